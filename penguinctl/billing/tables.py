"""The billing tables (migration 0005), declared once as SQLModel classes.

Billing's Core statements use the tables through the short names at the bottom (``t.accounts``,
``t.invoices``...), which are these classes' ``__table__``. Tables billing reads but does not own
(``campaign_sends``, ``campaigns``, ``resources``) are their owners' classes
(``penguinctl.campaigns.models``, ``penguinctl.state.models``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from penguinctl.state.columns import json_field, ts_field


class BillingAccount(SQLModel, table=True):
    """One per billed tenant: Stripe customer, budget, dunning status."""

    __tablename__ = "billing_accounts"

    tenant: str = Field(primary_key=True)
    stripe_customer_id: str | None = None
    budget_cents: int | None = Field(default=None, sa_type=BigInteger)
    status: str = Field(default="active", sa_column_kwargs={"server_default": "active"})
    suspended_at: datetime | None = ts_field(nullable=True)  # active | past_due | suspended
    created_at: datetime = ts_field()
    updated_at: datetime = ts_field()


class PlanAssignment(SQLModel, table=True):
    """Plan history: [effective_from, effective_to) per tenant."""

    __tablename__ = "plan_assignments"
    __table_args__ = (
        UniqueConstraint("tenant", "effective_from", name="uq_plan_assignments_start"),
        Index("ix_plan_assignments_tenant", "tenant", "effective_from"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant: str
    plan: str
    version: int | None = None  # catalog version pinned (grandfathering)
    effective_from: datetime = ts_field()
    effective_to: datetime | None = ts_field(nullable=True)
    source: str  # apply | backfill | manual
    created_at: datetime = ts_field()


class Invoice(SQLModel, table=True):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("tenant", "period", name="uq_invoices_tenant_period"),
        UniqueConstraint("number", name="uq_invoices_number"),
        Index("ix_invoices_period", "period"),
    )

    id: int | None = Field(default=None, primary_key=True)
    number: str
    tenant: str
    period: str  # YYYY-MM (UTC month)
    period_start: datetime = ts_field()
    period_end: datetime = ts_field()
    currency: str = Field(sa_type=String(3))
    subtotal_cents: int = Field(sa_type=BigInteger)
    total_cents: int = Field(sa_type=BigInteger)
    status: str  # issued | paid | payment_failed | void | uncollectible
    usage: dict[str, Any] = json_field()  # the metering snapshot it was built from
    stripe_invoice_id: str | None = None
    stripe_status: str | None = None  # draft | open | paid | ...
    payment_attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    payment_failed_at: datetime | None = ts_field(nullable=True)  # dunning day 0
    last_attempt_at: datetime | None = ts_field(nullable=True)
    paid_at: datetime | None = ts_field(nullable=True)
    created_at: datetime = ts_field()
    updated_at: datetime = ts_field()


class InvoiceLine(SQLModel, table=True):
    __tablename__ = "invoice_lines"
    __table_args__ = (UniqueConstraint("invoice_id", "position", name="uq_invoice_lines_position"),)

    id: int | None = Field(default=None, primary_key=True)
    invoice_id: int = Field(
        sa_column=Column(
            Integer,
            ForeignKey("invoices.id", name="fk_invoice_lines_invoice", ondelete="CASCADE"),
            nullable=False,
        )
    )
    position: int
    kind: str  # plan | overage | addon | infrastructure
    description: str
    quantity: int = Field(sa_type=BigInteger)
    unit_amount_cents: int = Field(sa_type=BigInteger)
    amount_cents: int = Field(sa_type=BigInteger)
    period_start: datetime = ts_field()
    period_end: datetime = ts_field()
    details: dict[str, Any] = json_field()
    stripe_item_id: str | None = None


class BillingAlert(SQLModel, table=True):
    """A budget/allowance warning, raised once per threshold and period."""

    __tablename__ = "billing_alerts"
    __table_args__ = (
        UniqueConstraint("tenant", "period", "kind", "threshold", name="uq_billing_alerts_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant: str
    period: str
    kind: str  # emails | budget
    threshold: int  # percent: 80 | 100
    used: int = Field(sa_type=BigInteger)
    allowed: int = Field(sa_type=BigInteger)
    created_at: datetime = ts_field()


# Billing's Core statements (t.accounts.c.tenant, sa.insert(t.invoices)...)
accounts = BillingAccount.__table__
assignments = PlanAssignment.__table__
invoices = Invoice.__table__
lines = InvoiceLine.__table__
alerts = BillingAlert.__table__
