"""Billing accounts: one ``billing_accounts`` row per tenant (Stripe customer, budget, status),
created on first use by whatever needs it (an invoice run, a budget, a Stripe sync)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl.billing import tables as t


def ensure_account(conn: Any, tenant: str, now: datetime) -> None:
    exists = conn.execute(
        sa.select(t.accounts.c.tenant).where(t.accounts.c.tenant == tenant)
    ).first()
    if exists is None:
        conn.execute(
            sa.insert(t.accounts).values(
                tenant=tenant, status="active", created_at=now, updated_at=now
            )
        )
