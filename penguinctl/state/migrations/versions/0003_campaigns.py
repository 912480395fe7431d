"""Campaigns, leads, suppression and the send ledger (issue 7).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JsonType = sa.JSON().with_variant(JSONB(), "postgresql")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),  # active | paused | completed
        sa.Column("paused_reason", sa.String, nullable=True),
        sa.Column("spec", JsonType, nullable=False),  # the validated Campaign spec
        sa.Column("spec_hash", sa.String, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("tenant", "name", name="uq_campaigns_tenant_name"),
    )
    op.create_table(
        "leads",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "campaign_id",
            sa.Integer,
            sa.ForeignKey("campaigns.id", name="fk_leads_campaign", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("email", sa.String, nullable=False),  # normalised (lower-case domain)
        sa.Column("first_name", sa.String, nullable=True),
        sa.Column("last_name", sa.String, nullable=True),
        sa.Column("company", sa.String, nullable=True),
        sa.Column("timezone", sa.String, nullable=True),  # IANA name
        sa.Column("fields", JsonType, nullable=False),  # custom columns
        # active | replied | bounced | unsubscribed | completed | suppressed | forgotten
        sa.Column("status", sa.String, nullable=False),
        sa.Column("next_step", sa.Integer, nullable=False, server_default="0"),
        _ts("next_send_at", nullable=True),  # when next_step becomes due (UTC)
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("campaign_id", "email", name="uq_leads_campaign_email"),
    )
    op.create_index("ix_leads_due", "leads", ["campaign_id", "status", "next_send_at"])
    op.create_index("ix_leads_email", "leads", ["email"])
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("scope", sa.String, nullable=False),  # global | tenant | campaign
        sa.Column("scope_ref", sa.String, nullable=False),  # "" | tenant | tenant/campaign
        sa.Column("email_hash", sa.String, nullable=False),  # sha256 of the normalised address
        sa.Column("email", sa.String, nullable=True),  # None once the person is forgotten
        sa.Column("reason", sa.String, nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("scope", "scope_ref", "email_hash", name="uq_suppressions_key"),
    )
    op.create_index("ix_suppressions_hash", "suppressions", ["email_hash"])
    op.create_table(
        "campaign_sends",  # the send ledger: at most one row per (lead, step)
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column(
            "campaign_id",
            sa.Integer,
            sa.ForeignKey("campaigns.id", name="fk_sends_campaign", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("lead_id", sa.Integer, nullable=True),  # None once the lead is forgotten
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("variant", sa.String, nullable=True),
        sa.Column("mailbox", sa.String, nullable=False),  # sender address
        sa.Column("recipient", sa.String, nullable=True),  # None once forgotten
        sa.Column("message_id", sa.String, nullable=False),
        # claimed | sent | failed | ambiguous
        sa.Column("status", sa.String, nullable=False),
        sa.Column("worker", sa.String, nullable=True),
        sa.Column("error", sa.String, nullable=True),
        _ts("claimed_at"),
        _ts("sent_at", nullable=True),
        sa.UniqueConstraint("lead_id", "step", name="uq_sends_lead_step"),
    )
    op.create_index("ix_sends_tenant_sent", "campaign_sends", ["tenant", "sent_at"])
    op.create_index("ix_sends_mailbox_sent", "campaign_sends", ["mailbox", "sent_at"])
    op.create_index("ix_sends_message_id", "campaign_sends", ["message_id"])


def downgrade() -> None:
    op.drop_table("campaign_sends")
    op.drop_table("suppressions")
    op.drop_table("leads")
    op.drop_table("campaigns")
