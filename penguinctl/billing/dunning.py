"""Failed payments: retries on days 3, 5 and 7 after the first failure (day 0), then read-only
suspension (billing-compliance.md 7.6: a 7-day grace period with full access).

An invoice whose first charge failed is ``payment_failed`` and its tenant ``past_due``. Each
``billing sync`` run retries an invoice at most once, when the next retry day has come (retries
a missed run skipped are not made up: one charge, counted as the latest due retry). When the
final (day 7) retry fails, the tenant is ``suspended``: its active campaigns are paused with
``paused_reason='billing: ...'`` (nothing is sent; data stays readable and exportable). A paid
invoice (a retry that succeeds, or ``billing sync`` seeing it paid in Stripe) reactivates the
tenant once it owes nothing else, and resumes exactly the campaigns billing paused.

The clock is injected (``now``), so the schedule is testable without waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from penguinctl.billing import tables as t
from penguinctl.billing.periods import as_utc
from penguinctl.campaigns.models import Campaign

CAMPAIGNS = Campaign.__table__  # paused and resumed here; owned by penguinctl.campaigns

RETRY_DAYS = (3, 5, 7)
GRACE_DAYS = 7
PAUSED_PREFIX = "billing: "


@dataclass
class Step:
    invoice: str
    tenant: str
    action: str  # retry_paid | retry_failed | closed | suspended | reactivated
    attempt: int | None = None


def due_retry(failed_at: datetime, attempts: int, now: datetime) -> int | None:
    """How many retries should have been made by ``now`` if that is more than were made
    (``attempts`` counts the first charge too), else None."""
    done = max(0, attempts - 1)
    due = sum(1 for d in RETRY_DAYS if now >= as_utc(failed_at) + timedelta(days=d))
    return due if due > done else None


def _emit(conn: Any, type_: str, tenant: str, subject: str, **payload: Any) -> None:
    from penguinctl.events.outbox import emit

    emit(conn, type_, tenant=tenant, subject=subject, payload=payload)


def _audit(conn: Any, tenant: str, action: str, resource: str, result: str, **details: Any) -> None:
    from penguinctl.state import audit

    audit.record_many(
        conn,
        [
            {
                "actor": details.pop("actor", "billing"),
                "tenant": tenant,
                "action": action,
                "resource": resource,
                "result": result,
                "details": details,
            }
        ],
    )


def record_failure(conn: Any, invoice: dict[str, Any], now: datetime, *, reason: str) -> None:
    """The first charge of ``invoice`` failed: dunning day 0."""
    conn.execute(
        sa.update(t.invoices)
        .where(t.invoices.c.id == invoice["id"])
        .values(
            status="payment_failed",
            payment_failed_at=now,
            last_attempt_at=now,
            payment_attempts=1,
            updated_at=now,
        )
    )
    conn.execute(
        sa.update(t.accounts)
        .where(t.accounts.c.tenant == invoice["tenant"], t.accounts.c.status == "active")
        .values(status="past_due", updated_at=now)
    )
    _audit(
        conn,
        invoice["tenant"],
        "billing.payment_failed",
        f"invoice/{invoice['number']}",
        "failed",
        reason=reason,
        day=0,
    )
    _emit(conn, "invoice.payment_failed", invoice["tenant"], f"invoice/{invoice['number']}",
          invoice=invoice["number"], attempt=1, reason=(reason or "card_error")[:100])  # fmt: skip


def record_paid(conn: Any, invoice: dict[str, Any], now: datetime) -> bool:
    """Mark ``invoice`` paid; reactivate its tenant when nothing else is unpaid. Returns whether
    the tenant was reactivated."""
    conn.execute(
        sa.update(t.invoices)
        .where(t.invoices.c.id == invoice["id"])
        .values(
            status="paid",
            stripe_status="paid",
            paid_at=now,
            updated_at=now,
        )
    )
    _audit(conn, invoice["tenant"], "billing.paid", f"invoice/{invoice['number']}", "ok")
    _emit(conn, "invoice.paid", invoice["tenant"], f"invoice/{invoice['number']}",
          invoice=invoice["number"], total_cents=int(invoice["total_cents"]),
          currency=invoice["currency"])  # fmt: skip
    unpaid = conn.execute(
        sa.select(sa.func.count()).where(
            t.invoices.c.tenant == invoice["tenant"], t.invoices.c.status == "payment_failed"
        )
    ).scalar()
    if unpaid:
        return False
    status = conn.execute(
        sa.select(t.accounts.c.status).where(t.accounts.c.tenant == invoice["tenant"])
    ).scalar()
    if status in (None, "active"):
        return False
    conn.execute(
        sa.update(t.accounts)
        .where(t.accounts.c.tenant == invoice["tenant"])
        .values(
            status="active",
            suspended_at=None,
            updated_at=now,
        )
    )
    resumed = conn.execute(
        sa.update(CAMPAIGNS)
        .where(
            CAMPAIGNS.c.tenant == invoice["tenant"],
            CAMPAIGNS.c.status == "paused",
            CAMPAIGNS.c.paused_reason.like(PAUSED_PREFIX + "%"),
        )
        .values(status="active", paused_reason=None, updated_at=now)
    ).rowcount
    _audit(
        conn,
        invoice["tenant"],
        "billing.reactivate",
        f"tenant/{invoice['tenant']}",
        "ok",
        campaigns_resumed=resumed,
        was=status,
    )
    _emit(conn, "tenant.reactivated", invoice["tenant"], f"tenant/{invoice['tenant']}",
          previous=status if status in ("past_due", "suspended") else "past_due",
          campaigns_resumed=int(resumed))  # fmt: skip
    return status == "suspended"


def suspend(conn: Any, tenant: str, number: str, now: datetime) -> int:
    """Read-only suspension: the account is suspended, active campaigns are paused."""
    conn.execute(
        sa.update(t.accounts)
        .where(t.accounts.c.tenant == tenant)
        .values(
            status="suspended",
            suspended_at=now,
            updated_at=now,
        )
    )
    names = list(
        conn.execute(
            sa.select(CAMPAIGNS.c.name).where(
                CAMPAIGNS.c.tenant == tenant, CAMPAIGNS.c.status == "active"
            )
        ).scalars()
    )
    reason = f"{PAUSED_PREFIX}invoice {number} unpaid"
    paused = conn.execute(
        sa.update(CAMPAIGNS)
        .where(CAMPAIGNS.c.tenant == tenant, CAMPAIGNS.c.status == "active")
        .values(status="paused", paused_reason=reason, updated_at=now)
    ).rowcount
    for name in names:
        _emit(conn, "campaign.paused", tenant, f"campaign/{name}", campaign=name,
              cause="billing", reason=reason)  # fmt: skip
    _emit(conn, "tenant.suspended", tenant, f"tenant/{tenant}", invoice=number,
          campaigns_paused=int(paused))  # fmt: skip
    _audit(
        conn,
        tenant,
        "billing.suspend",
        f"tenant/{tenant}",
        "ok",
        invoice=number,
        campaigns_paused=paused,
    )
    return paused


def is_suspended(conn: Any, tenant: str) -> bool:
    """For senders: a suspended tenant sends nothing."""
    return bool(suspended_tenants(conn, [tenant]))


def suspended_tenants(conn: Any, tenants: Iterable[str]) -> list[str]:
    """Those of ``tenants`` suspended for an unpaid invoice (read-only: they send nothing, and
    campaigns and settings cannot be changed), sorted."""
    names = sorted(set(tenants))
    if not names:
        return []
    return list(
        conn.execute(
            sa.select(t.accounts.c.tenant)
            .where(t.accounts.c.tenant.in_(names), t.accounts.c.status == "suspended")
            .order_by(t.accounts.c.tenant)
        ).scalars()
    )


def refuse_if_suspended(conn: Any, tenant: str, what: str) -> None:
    """Raise a usage error when ``tenant`` is suspended (``what``: the refused action)."""
    if is_suspended(conn, tenant):
        from penguinctl.errors import UsageError

        raise UsageError(
            f"tenant {tenant} is suspended for an unpaid invoice (read-only): cannot {what}",
            hint="a paid invoice reactivates it (`penguinctl billing sync` retries the charge)",
        )


def process(
    engine: Any, charge: Callable[[dict[str, Any], int], bool | None], now: datetime
) -> list[Step]:
    """Run the schedule for every ``payment_failed`` invoice. ``charge(invoice, attempt)``
    tries to collect it (True: paid; False: failed; None: no longer payable, e.g. void, and
    recorded as such by ``charge``: no more retries) and must be idempotent per (invoice,
    attempt)."""
    steps: list[Step] = []
    with engine.connect() as conn:
        failed = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(t.invoices)
                .where(t.invoices.c.status == "payment_failed")
                .order_by(t.invoices.c.id)
            )
        ]
    for inv in failed:
        failed_at = as_utc(inv["payment_failed_at"])
        retry = due_retry(failed_at, inv["payment_attempts"], now)
        if retry is not None:
            attempt = retry + 1  # the first charge was attempt 1
            paid = charge(inv, attempt)
            if paid is None:
                steps.append(Step(inv["number"], inv["tenant"], "closed", attempt))
                continue
            with engine.begin() as conn:
                if paid:
                    record_paid(conn, inv, now)
                    steps.append(Step(inv["number"], inv["tenant"], "retry_paid", attempt))
                    continue
                conn.execute(
                    sa.update(t.invoices)
                    .where(t.invoices.c.id == inv["id"])
                    .values(
                        payment_attempts=attempt,
                        last_attempt_at=now,
                        updated_at=now,
                    )
                )
                _audit(
                    conn,
                    inv["tenant"],
                    "billing.retry",
                    f"invoice/{inv['number']}",
                    "failed",
                    attempt=attempt,
                    day=RETRY_DAYS[retry - 1],
                )
                _emit(conn, "invoice.payment_failed", inv["tenant"], f"invoice/{inv['number']}",
                      invoice=inv["number"], attempt=attempt, reason="retry declined")  # fmt: skip
                inv["payment_attempts"] = attempt
            steps.append(Step(inv["number"], inv["tenant"], "retry_failed", attempt))
        final_done = inv["payment_attempts"] >= len(RETRY_DAYS) + 1
        if final_done and now >= failed_at + timedelta(days=GRACE_DAYS):
            with engine.begin() as conn:
                status = conn.execute(
                    sa.select(t.accounts.c.status).where(t.accounts.c.tenant == inv["tenant"])
                ).scalar()
                if status != "suspended":
                    suspend(conn, inv["tenant"], inv["number"], now)
                    steps.append(Step(inv["number"], inv["tenant"], "suspended"))
    return steps
