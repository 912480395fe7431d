"""Events, webhooks and alerts (issue 20): the event outbox, webhook endpoints with their
deliveries and attempts, alert recipients with their items and digests.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
UNDISPATCHED = sa.text("dispatched_at IS NULL")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("id", sa.String, nullable=False),
        sa.Column("type", sa.String, nullable=False),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("subject", sa.String, nullable=False),
        sa.Column("payload", JSON, nullable=False),
        _ts("occurred_at"),
        _ts("dispatched_at", nullable=True),
        sa.UniqueConstraint("id", name="uq_events_id"),
    )
    op.create_index("ix_events_tenant_time", "events", ["tenant", "occurred_at"])
    op.create_index("ix_events_type_time", "events", ["type", "occurred_at"])
    op.create_index(
        "ix_events_undispatched",
        "events",
        ["seq"],
        postgresql_where=UNDISPATCHED,
        sqlite_where=UNDISPATCHED,
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("url", sa.String, nullable=False),
        sa.Column("description", sa.String, nullable=False),
        sa.Column("event_types", JSON, nullable=False),
        sa.Column("allow_private", sa.Boolean, nullable=False),
        sa.Column("legacy_headers", sa.Boolean, nullable=False),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("disabled_reason", sa.String, nullable=True),
        _ts("failing_since", nullable=True),
        _ts("last_success_at", nullable=True),
        _ts("secret_rotated_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_index("ix_webhook_endpoints_tenant", "webhook_endpoints", ["tenant"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("event_seq", sa.Integer, sa.ForeignKey("events.seq"), nullable=False),
        sa.Column("event_id", sa.String, nullable=False),
        sa.Column("event_type", sa.String, nullable=False),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column(
            "endpoint_id",
            sa.String,
            sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _ts("next_attempt_at", nullable=True),
        _ts("lease_until", nullable=True),
        sa.Column("claimed_by", sa.String, nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String, nullable=True),
        _ts("delivered_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint(
            "event_seq", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index("ix_webhook_deliveries_endpoint", "webhook_deliveries", ["endpoint_id", "id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "delivery_id",
            sa.Integer,
            sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("endpoint_id", sa.String, nullable=False),
        sa.Column("event_id", sa.String, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        _ts("started_at"),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("outcome", sa.String, nullable=False),
        sa.Column("error", sa.String, nullable=True),
        sa.Column("response_excerpt", sa.String, nullable=False),
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_id"])
    op.create_table(
        "alert_subscriptions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("email", sa.String, nullable=False),
        sa.Column("every_minutes", sa.Integer, nullable=False),
        sa.Column("event_types", JSON, nullable=False),
        _ts("last_sent_at", nullable=True),
        _ts("retry_at", nullable=True),
        _ts("created_at"),
        sa.UniqueConstraint("tenant", "email", name="uq_alert_subscriptions_key"),
    )
    op.create_table(
        "alert_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "subscription_id",
            sa.Integer,
            sa.ForeignKey("alert_subscriptions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_seq", sa.Integer, sa.ForeignKey("events.seq"), nullable=False),
        sa.Column("digest_id", sa.Integer, nullable=True),
        _ts("created_at"),
        sa.UniqueConstraint("subscription_id", "event_seq", name="uq_alert_items_event"),
    )
    op.create_index("ix_alert_items_pending", "alert_items", ["subscription_id", "digest_id"])
    op.create_table(
        "alert_digests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "subscription_id",
            sa.Integer,
            sa.ForeignKey("alert_subscriptions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        _ts("attempted_at"),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("items", sa.Integer, nullable=False),
        sa.Column("subject", sa.String, nullable=False),
        sa.Column("error", sa.String, nullable=True),
    )
    op.create_index("ix_alert_digests_subscription", "alert_digests", ["subscription_id", "id"])


def downgrade() -> None:
    for table in (
        "alert_digests",
        "alert_items",
        "alert_subscriptions",
        "webhook_attempts",
        "webhook_deliveries",
        "webhook_endpoints",
        "events",
    ):
        op.drop_table(table)
