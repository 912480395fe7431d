"""Campaign sending: mailbox state (warmup, pauses) and inbound events (issue 7).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "campaign_mailboxes",  # per sending mailbox: warmup start, pause, today's counter
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("address", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False, server_default="active"),  # | paused
        sa.Column("paused_reason", sa.String, nullable=True),
        _ts("warmup_started_at"),
        sa.Column("day", sa.String, nullable=True),  # UTC date (YYYY-MM-DD) of day_count
        sa.Column("day_count", sa.Integer, nullable=False, server_default="0"),
        _ts("last_claim_at", nullable=True),
        _ts("updated_at"),
        sa.UniqueConstraint("tenant", "address", name="uq_campaign_mailboxes_key"),
    )
    op.create_table(
        "inbound_cursors",  # what was read from each mailbox folder over IMAP
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("mailbox", sa.String, nullable=False),
        sa.Column("folder", sa.String, nullable=False),
        sa.Column("uidvalidity", sa.BigInteger, nullable=False),
        sa.Column("last_uid", sa.BigInteger, nullable=False, server_default="0"),
        _ts("updated_at"),
        sa.UniqueConstraint("tenant", "mailbox", "folder", name="uq_inbound_cursors_key"),
    )
    op.create_table(
        "inbound_events",  # one row per processed inbound message (reply, bounce, ...)
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("mailbox", sa.String, nullable=False),
        sa.Column("folder", sa.String, nullable=False),
        sa.Column("uidvalidity", sa.BigInteger, nullable=False),
        sa.Column("uid", sa.BigInteger, nullable=False),
        # reply | autoreply | hard_bounce | soft_bounce | unsubscribe | unmatched
        sa.Column("kind", sa.String, nullable=False),
        sa.Column(
            "campaign_id",
            sa.Integer,
            sa.ForeignKey("campaigns.id", name="fk_inbound_campaign", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("lead_id", sa.Integer, nullable=True),
        sa.Column("send_id", sa.Integer, nullable=True),
        sa.Column("status_code", sa.String, nullable=True),  # DSN status (5.1.1)
        sa.Column("detail", sa.String, nullable=True),  # no message body, only a short reason
        _ts("received_at"),
        sa.UniqueConstraint(
            "tenant", "mailbox", "folder", "uidvalidity", "uid", name="uq_inbound_events_uid"
        ),
    )
    op.create_index("ix_inbound_events_lead", "inbound_events", ["lead_id", "kind"])
    op.create_index("ix_inbound_events_mailbox", "inbound_events", ["mailbox", "kind"])
    op.create_table(
        "send_retries",  # temporary (4xx) failures of a (lead, step) whose claim was released
        sa.Column("lead_id", sa.Integer, primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.String, nullable=True),
        _ts("updated_at"),
    )


def downgrade() -> None:
    op.drop_table("send_retries")
    op.drop_table("inbound_events")
    op.drop_table("inbound_cursors")
    op.drop_table("campaign_mailboxes")
