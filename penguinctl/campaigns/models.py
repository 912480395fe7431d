"""SQLModel classes for the campaign tables of migration 0003.

``campaigns`` (one row per (tenant, name), the validated spec as JSON), ``leads`` (one row per
(campaign, address)), ``suppressions`` (hashed addresses per scope) and ``campaign_sends`` (the
send ledger, at most one row per (lead, step)). These classes are the schema's one declaration:
a change here needs a migration generated from them (README, Development), and
tests/test_schema.py fails while the two differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from penguinctl.state.columns import JsonType, ts_field

CAMPAIGN_STATUSES = ("active", "paused", "completed")
LEAD_STATUSES = (
    "active",
    "replied",
    "bounced",
    "unsubscribed",
    "completed",
    "suppressed",
    "forgotten",
    "failed",  # no message could be composed for it (the send is 'unsent', with the reason)
)
SUPPRESSION_SCOPES = ("global", "tenant", "campaign")
SEND_STATUSES = ("claimed", "sent", "failed", "ambiguous", "unsent")


class Campaign(SQLModel, table=True):
    __tablename__ = "campaigns"
    __table_args__ = (UniqueConstraint("tenant", "name", name="uq_campaigns_tenant_name"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant: str
    name: str
    status: str = "active"  # active | paused | completed
    paused_reason: str | None = None
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JsonType, nullable=False))
    spec_hash: str
    created_at: datetime = ts_field()
    updated_at: datetime = ts_field()

    @property
    def key(self) -> str:
        """``tenant/name``: the campaign's ``scope_ref`` in suppressions and its seed prefix."""
        return f"{self.tenant}/{self.name}"


class Lead(SQLModel, table=True):
    __tablename__ = "leads"
    __table_args__ = (
        UniqueConstraint("campaign_id", "email", name="uq_leads_campaign_email"),
        # the worker's due leads (scheduler.py; migration 0013)
        Index(
            "ix_leads_due",
            "campaign_id",
            "next_send_at",
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    # No foreign key to campaigns (migration 0016 dropped fk_leads_campaign, issue 24): its
    # per-row check cost an import on PostgreSQL about 2.4 s per million rows, and it only
    # repeated what the import already guarantees. The import (leads.py, lead_writer.py) is
    # the only code that adds leads or sets their campaign_id: it resolves the stored campaign
    # first and holds the campaign's row locked for the whole import (FOR UPDATE on
    # PostgreSQL; SQLite has one writer), so no lead is written for a campaign that is not
    # there. No code deletes a campaign, so ON DELETE CASCADE never ran: code that comes to
    # delete one must delete the campaign's leads itself, in the same transaction.
    campaign_id: int = Field(sa_column=Column(Integer, nullable=False))
    email: str  # normalised (see suppression.normalise_email)
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    timezone: str | None = None  # IANA name
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JsonType, nullable=False))
    status: str = "active"
    # 0-based index of the next step to send
    next_step: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    next_send_at: datetime | None = ts_field(nullable=True)  # UTC; None = due now
    created_at: datetime = ts_field()
    updated_at: datetime = ts_field()

    def context(self) -> dict[str, Any]:
        """Template variables: custom fields first, then the known columns (which win)."""
        return lead_context(self)


def lead_context(lead: Lead | LeadRef) -> dict[str, Any]:
    context: dict[str, Any] = dict(lead.fields or {})
    context.update(
        email=lead.email,
        first_name=lead.first_name,
        last_name=lead.last_name,
        company=lead.company,
        timezone=lead.timezone,
    )
    return {k: v for k, v in context.items() if v is not None}


# Plain read-only views of a stored campaign and lead, for the worker's hot path: what
# composing a message reads, without the ORM's per-attribute machinery or pydantic defaults.
@dataclass(frozen=True, slots=True)
class CampaignRef:
    id: int
    tenant: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.name}"


@dataclass(frozen=True, slots=True)
class LeadRef:
    id: int
    campaign_id: int
    email: str
    first_name: str | None
    last_name: str | None
    company: str | None
    timezone: str | None
    fields: dict[str, Any] | None

    def context(self) -> dict[str, Any]:
        return lead_context(self)


class Suppression(SQLModel, table=True):
    __tablename__ = "suppressions"
    __table_args__ = (
        UniqueConstraint("scope", "scope_ref", "email_hash", name="uq_suppressions_key"),
        Index("ix_suppressions_hash", "email_hash"),
    )

    id: int | None = Field(default=None, primary_key=True)
    scope: str  # global | tenant | campaign
    scope_ref: str = ""  # "" | tenant | tenant/campaign
    email_hash: str  # sha256 hex of the normalised address
    email: str | None = None  # None once the person is forgotten
    reason: str
    created_at: datetime = ts_field()


class CampaignSend(SQLModel, table=True):
    __tablename__ = "campaign_sends"
    __table_args__ = (
        UniqueConstraint("lead_id", "step", name="uq_sends_lead_step"),
        Index("ix_sends_tenant_sent", "tenant", "sent_at"),
        Index("ix_sends_mailbox_sent", "mailbox", "sent_at"),
        Index("ix_sends_message_id", "message_id"),
        Index("ix_sends_campaign", "campaign_id", "status", "sent_at"),  # the dashboard's counts
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant: str
    campaign_id: int = Field(
        sa_column=Column(
            Integer,
            ForeignKey("campaigns.id", name="fk_sends_campaign", ondelete="CASCADE"),
            nullable=False,
        )
    )
    lead_id: int | None = None  # None once the lead is forgotten
    step: int
    variant: str | None = None
    mailbox: str  # sender address
    recipient: str | None = None  # None once forgotten
    message_id: str
    status: str  # claimed | sent | failed | ambiguous | unsent
    worker: str | None = None
    error: str | None = None
    claimed_at: datetime = ts_field()
    sent_at: datetime | None = ts_field(nullable=True)
