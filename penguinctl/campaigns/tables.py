"""The campaign sending tables of migration 0006, declared once as SQLModel classes (the tables of
migration 0003 are ``campaigns.models``): mailbox state, inbound cursors and events, retries.
Core statements use their ``__table__`` (``ledger.MAILBOXES``, ``inbound.CURSORS``...)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from penguinctl.state.columns import ts_field


class CampaignMailbox(SQLModel, table=True):
    """Per sending mailbox: warmup start, pause, today's counter."""

    __tablename__ = "campaign_mailboxes"
    __table_args__ = (UniqueConstraint("tenant", "address", name="uq_campaign_mailboxes_key"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant: str
    address: str
    status: str = Field(default="active", sa_column_kwargs={"server_default": "active"})
    paused_reason: str | None = None
    warmup_started_at: datetime = ts_field()
    day: str | None = None  # UTC date (YYYY-MM-DD) of day_count
    day_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    last_claim_at: datetime | None = ts_field(nullable=True)
    updated_at: datetime = ts_field()


class InboundCursor(SQLModel, table=True):
    """What was read from each mailbox folder over IMAP."""

    __tablename__ = "inbound_cursors"
    __table_args__ = (
        UniqueConstraint("tenant", "mailbox", "folder", name="uq_inbound_cursors_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant: str
    mailbox: str
    folder: str
    uidvalidity: int = Field(sa_type=BigInteger)
    last_uid: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})
    updated_at: datetime = ts_field()


class InboundEvent(SQLModel, table=True):
    """One row per processed inbound message (reply, bounce, ...)."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint(
            "tenant", "mailbox", "folder", "uidvalidity", "uid", name="uq_inbound_events_uid"
        ),
        Index("ix_inbound_events_lead", "lead_id", "kind"),
        Index("ix_inbound_events_mailbox", "mailbox", "kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant: str
    mailbox: str
    folder: str
    uidvalidity: int = Field(sa_type=BigInteger)
    uid: int = Field(sa_type=BigInteger)
    kind: str  # reply | autoreply | hard_bounce | soft_bounce | unsubscribe | unmatched
    campaign_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("campaigns.id", name="fk_inbound_campaign", ondelete="CASCADE"),
            nullable=True,
        ),
    )
    lead_id: int | None = None
    send_id: int | None = None
    status_code: str | None = None  # DSN status (5.1.1)
    detail: str | None = None  # no message body, only a short reason
    received_at: datetime = ts_field()


class SendRetry(SQLModel, table=True):
    """Temporary (4xx) failures of a (lead, step) whose claim was released."""

    __tablename__ = "send_retries"

    lead_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    step: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    attempts: int
    last_error: str | None = None
    updated_at: datetime = ts_field()
