"""Budget and allowance alerts: at 80% and 100% of a tenant's included emails and of its budget
(``billing budget set``), once per tenant, period, kind and threshold.

Alerts warn; they never block sending or charges (the "alert only" overage mode). Each new
alert is a ``billing_alerts`` row and an audit event ``billing.alert``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl.billing import tables as t
from penguinctl.billing.periods import Period

THRESHOLDS = (80, 100)


def reached(used: int, allowed: int | None) -> list[int]:
    if not allowed or allowed <= 0:
        return []
    return [p for p in THRESHOLDS if used * 100 >= p * allowed]


def evaluate(
    conn: Any,
    tenant: str,
    period: Period,
    draft: Any,
    catalog: Any = None,
    *,
    now: datetime,
    actor: str = "billing",
) -> list[dict[str, Any]]:
    """Every threshold reached by ``draft`` (an invoice or a preview), each marked ``new`` when
    this call raised it."""
    from penguinctl.events.outbox import emit
    from penguinctl.state import audit

    budget = conn.execute(
        sa.select(t.accounts.c.budget_cents).where(t.accounts.c.tenant == tenant)
    ).scalar()
    checks = (
        ("emails", int(draft.usage.get("emails_sent") or 0), draft.usage.get("included_emails")),
        ("budget", draft.total_cents, budget),
    )
    a = t.alerts.c
    seen = {
        (k, th)
        for k, th in conn.execute(
            sa.select(a.kind, a.threshold).where(a.tenant == tenant, a.period == str(period))
        )
    }
    out: list[dict[str, Any]] = []
    for kind, used, allowed in checks:
        for threshold in reached(used, allowed):
            new = (kind, threshold) not in seen
            alert = {
                "tenant": tenant,
                "period": str(period),
                "kind": kind,
                "threshold": threshold,
                "used": used,
                "allowed": allowed,
                "new": new,
            }
            out.append(alert)
            if not new:
                continue
            conn.execute(
                sa.insert(t.alerts).values(
                    tenant=tenant,
                    period=str(period),
                    kind=kind,
                    threshold=threshold,
                    used=used,
                    allowed=allowed,
                    created_at=now,
                )
            )
            emit(
                conn,
                "budget.threshold",
                tenant=tenant,
                subject=f"billing/{tenant}/{period}",
                payload={k: alert[k] for k in ("period", "kind", "threshold", "used", "allowed")},
            )
            audit.record_many(
                conn,
                [
                    {
                        "actor": actor,
                        "tenant": tenant,
                        "action": "billing.alert",
                        "resource": f"billing/{tenant}/{period}",
                        "result": "warn",
                        "details": {
                            "kind": kind,
                            "threshold": threshold,
                            "used": used,
                            "allowed": allowed,
                        },
                    }
                ],
            )
    return out


def describe(alert: dict[str, Any]) -> str:
    what = "included emails" if alert["kind"] == "emails" else "budget"
    used, allowed = alert["used"], alert["allowed"]
    if alert["kind"] == "budget":
        used_s, allowed_s = f"${used / 100:,.2f}", f"${allowed / 100:,.2f}"
    else:
        used_s, allowed_s = f"{used:,}", f"{allowed:,}"
    return (
        f"{alert['tenant']} {alert['period']}: {alert['threshold']}% of {what} reached "
        f"({used_s} of {allowed_s})"
    )


def set_budget(conn: Any, tenant: str, cents: int | None, now: datetime) -> None:
    from penguinctl.billing.accounts import ensure_account

    ensure_account(conn, tenant, now)
    conn.execute(
        sa.update(t.accounts)
        .where(t.accounts.c.tenant == tenant)
        .values(budget_cents=cents, updated_at=now)
    )
