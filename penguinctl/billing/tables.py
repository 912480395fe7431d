"""SQLAlchemy Core views of the billing tables (migration 0005) and of the few tables billing
reads but does not own (``campaign_sends``, ``campaigns``: migration 0003; ``resources``)."""

from __future__ import annotations

import sqlalchemy as sa

from penguinctl.state.columns import JsonType
from penguinctl.state.columns import ts_column as _ts

metadata = sa.MetaData()


accounts = sa.Table(
    "billing_accounts",
    metadata,
    sa.Column("tenant", sa.String, primary_key=True),
    sa.Column("stripe_customer_id", sa.String),
    sa.Column("budget_cents", sa.BigInteger),
    sa.Column("status", sa.String, nullable=False),
    _ts("suspended_at", True),
    _ts("created_at"),
    _ts("updated_at"),
)

assignments = sa.Table(
    "plan_assignments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String, nullable=False),
    sa.Column("plan", sa.String, nullable=False),
    sa.Column("version", sa.Integer),
    _ts("effective_from"),
    _ts("effective_to", True),
    sa.Column("source", sa.String, nullable=False),
    _ts("created_at"),
)

invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("number", sa.String, nullable=False),
    sa.Column("tenant", sa.String, nullable=False),
    sa.Column("period", sa.String, nullable=False),
    _ts("period_start"),
    _ts("period_end"),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("subtotal_cents", sa.BigInteger, nullable=False),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("usage", JsonType, nullable=False),
    sa.Column("stripe_invoice_id", sa.String),
    sa.Column("stripe_status", sa.String),
    sa.Column("payment_attempts", sa.Integer, nullable=False, default=0),
    _ts("payment_failed_at", True),
    _ts("last_attempt_at", True),
    _ts("paid_at", True),
    _ts("created_at"),
    _ts("updated_at"),
)

lines = sa.Table(
    "invoice_lines",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("invoice_id", sa.Integer, sa.ForeignKey("invoices.id"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("description", sa.String, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("unit_amount_cents", sa.BigInteger, nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    _ts("period_start"),
    _ts("period_end"),
    sa.Column("details", JsonType, nullable=False),
    sa.Column("stripe_item_id", sa.String),
)

alerts = sa.Table(
    "billing_alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String, nullable=False),
    sa.Column("period", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("threshold", sa.Integer, nullable=False),
    sa.Column("used", sa.BigInteger, nullable=False),
    sa.Column("allowed", sa.BigInteger, nullable=False),
    _ts("created_at"),
)

# -- read (or, for campaigns, paused) by billing; owned elsewhere -----------------------------
campaign_sends = sa.Table(
    "campaign_sends",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String),
    sa.Column("status", sa.String),
    _ts("sent_at", True),
)

campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String),
    sa.Column("name", sa.String),
    sa.Column("status", sa.String),
    sa.Column("paused_reason", sa.String),
    _ts("updated_at"),
)

resources = sa.Table(
    "resources",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String),
    sa.Column("kind", sa.String),
    sa.Column("name", sa.String),
    sa.Column("provider", sa.String),
    sa.Column("data", JsonType),
    sa.Column("status", sa.String),
    _ts("created_at"),
)
