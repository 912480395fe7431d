"""Billing passes shared by ``billing alerts`` and the scheduled ``billing-alerts`` job."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def evaluate_alerts(engine: Any, catalog: Any, period: Any, *, now: datetime, actor: str):
    """Every billed tenant's usage so far against 80%/100% of its included emails and budget;
    new warnings are recorded once. Returns the alerts (``new`` marks the ones recorded now)."""
    from penguinctl.billing import budgets, history, invoices
    from penguinctl.errors import PenguinError

    out: list[dict[str, Any]] = []
    with engine.begin() as conn:
        history.backfill(conn)
        for tenant in history.billed_tenants(conn, period.start, period.end):
            try:
                draft = invoices.preview(conn, catalog, tenant, period)
            except PenguinError:
                continue
            invoices.ensure_account(conn, tenant, now)
            out += budgets.evaluate(conn, tenant, period, draft, catalog, now=now, actor=actor)
    return out
