"""Billing: plan assignments, invoices, Stripe sync (issue 9).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JsonType = sa.JSON().with_variant(JSONB(), "postgresql")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "billing_accounts",  # one per billed tenant: Stripe customer, budget, dunning status
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("stripe_customer_id", sa.String, nullable=True),
        sa.Column("budget_cents", sa.BigInteger, nullable=True),
        sa.Column(
            "status", sa.String, nullable=False, server_default="active"
        ),  # active|past_due|suspended
        _ts("suspended_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_table(
        "plan_assignments",  # plan history: [effective_from, effective_to) per tenant
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("plan", sa.String, nullable=False),
        sa.Column("version", sa.Integer, nullable=True),  # catalog version pinned (grandfathering)
        _ts("effective_from"),
        _ts("effective_to", nullable=True),
        sa.Column("source", sa.String, nullable=False),  # apply | backfill | manual
        _ts("created_at"),
        sa.UniqueConstraint("tenant", "effective_from", name="uq_plan_assignments_start"),
    )
    op.create_index("ix_plan_assignments_tenant", "plan_assignments", ["tenant", "effective_from"])
    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("number", sa.String, nullable=False),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("period", sa.String, nullable=False),  # YYYY-MM (UTC month)
        _ts("period_start"),
        _ts("period_end"),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("subtotal_cents", sa.BigInteger, nullable=False),
        sa.Column("total_cents", sa.BigInteger, nullable=False),
        # issued | paid | payment_failed | void | uncollectible
        sa.Column("status", sa.String, nullable=False),
        sa.Column("usage", JsonType, nullable=False),  # the metering snapshot it was built from
        sa.Column("stripe_invoice_id", sa.String, nullable=True),
        sa.Column("stripe_status", sa.String, nullable=True),  # draft | open | paid | ...
        sa.Column("payment_attempts", sa.Integer, nullable=False, server_default="0"),
        _ts("payment_failed_at", nullable=True),  # dunning day 0
        _ts("last_attempt_at", nullable=True),
        _ts("paid_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("tenant", "period", name="uq_invoices_tenant_period"),
        sa.UniqueConstraint("number", name="uq_invoices_number"),
    )
    op.create_index("ix_invoices_period", "invoices", ["period"])
    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "invoice_id",
            sa.Integer,
            sa.ForeignKey("invoices.id", name="fk_invoice_lines_invoice", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String, nullable=False),  # plan | overage | addon | infrastructure
        sa.Column("description", sa.String, nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("unit_amount_cents", sa.BigInteger, nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        _ts("period_start"),
        _ts("period_end"),
        sa.Column("details", JsonType, nullable=False),
        sa.Column("stripe_item_id", sa.String, nullable=True),
        sa.UniqueConstraint("invoice_id", "position", name="uq_invoice_lines_position"),
    )
    op.create_table(
        "billing_alerts",  # a budget/allowance warning, raised once per threshold and period
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("period", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),  # emails | budget
        sa.Column("threshold", sa.Integer, nullable=False),  # percent: 80 | 100
        sa.Column("used", sa.BigInteger, nullable=False),
        sa.Column("allowed", sa.BigInteger, nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("tenant", "period", "kind", "threshold", name="uq_billing_alerts_key"),
    )


def downgrade() -> None:
    op.drop_table("billing_alerts")
    op.drop_table("invoice_lines")
    op.drop_index("ix_invoices_period", table_name="invoices")
    op.drop_table("invoices")
    op.drop_index("ix_plan_assignments_tenant", table_name="plan_assignments")
    op.drop_table("plan_assignments")
    op.drop_table("billing_accounts")
