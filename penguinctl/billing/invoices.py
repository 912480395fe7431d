"""Invoices: one per tenant and period, built from the plan history, usage and the catalog.

Computation (``compute``) is pure. Amounts are integer cents, rounded half up once per line;
the total is the sum of the lines.

- Plan: each UTC day of the period is billed at the plan the tenant had on that day; when the
  plan changed during a day, the plan assigned last that day counts (an upgrade bills its day at
  the new price, the day a tenant is created or removed is billed). Consecutive days on the same
  plan and version form one line: ``monthly_price * days / days_in_month``.
- Included emails are prorated the same way (half up); sends beyond them are billed in whole
  blocks (``extra_emails_block``, rounded up) at ``extra_emails``, the add-on price of the
  version in effect on the last billed day.
- Dedicated IPs beyond the plan's ``included_dedicated_ips``: ``dedicated_ip`` each, a full month.
- Infrastructure: each Hostwinds server's monthly cost for the days it existed (metering.py).

``run`` writes each invoice with its lines in one transaction; the unique constraint on
(tenant, period) makes a second run, a concurrent run or a run resumed after a crash skip the
invoices that exist. An invoice is never rewritten: later changes (late sends) do not alter it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from penguinctl.billing import history
from penguinctl.billing import tables as t
from penguinctl.billing.accounts import ensure_account
from penguinctl.billing.catalog import Catalog, PlanVersion
from penguinctl.billing.metering import Usage, measure
from penguinctl.billing.periods import Period, prorate
from penguinctl.errors import ConfigError, NotFound, PenguinError, UsageError

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Line:
    kind: str  # plan | overage | addon | infrastructure
    description: str
    quantity: int
    unit_amount_cents: int
    amount_cents: int
    period_start: datetime
    period_end: datetime
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Draft:
    tenant: str
    period: Period
    currency: str
    lines: list[Line]
    usage: dict[str, Any]

    @property
    def total_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)


@dataclass(frozen=True)
class Segment:
    plan: str
    version: PlanVersion
    first: date
    days: int


def segments(
    catalog: Catalog, assignments: list[history.Assignment], period: Period
) -> list[Segment]:
    """Runs of consecutive days on the same plan and version (see the module docstring)."""
    out: list[Segment] = []
    for day in period.day_starts():
        on_day = [a for a in assignments if a.start < day + DAY and (a.end is None or a.end > day)]
        if not on_day:
            continue
        a = max(on_day, key=lambda x: x.start)
        version = catalog.version(a.plan, a.version, on=a.start.date())
        last = out[-1] if out else None
        if (
            last
            and last.plan == a.plan
            and last.version == version
            and (last.first + timedelta(days=last.days) == day.date())
        ):
            out[-1] = Segment(last.plan, version, last.first, last.days + 1)
        else:
            out.append(Segment(a.plan, version, day.date(), 1))
    return out


def _money(cents: int, currency: str) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    symbol = "$" if currency == "usd" else ""
    suffix = "" if symbol else f" {currency.upper()}"
    return f"{sign}{symbol}{cents // 100:,}.{cents % 100:02d}{suffix}"


def _at(day: date) -> datetime:
    from datetime import UTC

    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def compute(
    catalog: Catalog, assignments: list[history.Assignment], usage: Usage, period: Period
) -> Draft:
    cur = catalog.currency
    segs = segments(catalog, assignments, period)
    if not segs:
        raise NotFound(f"tenant {usage.tenant!r} had no plan in {period}")
    lines: list[Line] = []
    for seg in segs:
        name = catalog.plan(seg.plan).name
        if seg.version.monthly_price is None:
            raise ConfigError(
                f"tenant {usage.tenant}: plan {seg.plan!r} v{seg.version.version} has a custom "
                f"price, not a list price ({catalog.source})",
                hint="give the tenant its own priced plan in $PENGUINCTL_HOME/config/plans.yaml",
            )
        amount = prorate(seg.version.monthly_price, seg.days, period.days)
        last_day = seg.first + timedelta(days=seg.days - 1)
        full = seg.days == period.days
        span = "" if full else f", {seg.first} to {last_day} ({seg.days} of {period.days} days)"
        lines.append(
            Line(
                "plan",
                f"{name} plan (v{seg.version.version}), {period}{span}",
                1,
                amount,
                amount,
                _at(seg.first),
                _at(last_day) + DAY,
                {
                    "plan": seg.plan,
                    "version": seg.version.version,
                    "days": seg.days,
                    "period_days": period.days,
                    "monthly_price_cents": seg.version.monthly_price,
                },
            )
        )
    final = segs[-1].version
    addons = catalog.addons_for(final)
    included: int | None = None
    if all(s.version.included_emails is not None for s in segs):
        included = sum(prorate(s.version.included_emails or 0, s.days, period.days) for s in segs)
        extra = usage.emails_sent - included
        if extra > 0:
            blocks = -(-extra // addons.extra_emails_block)
            lines.append(
                Line(
                    "overage",
                    f"Extra emails: {usage.emails_sent:,} sent, {included:,} included "
                    f"({blocks} x {addons.extra_emails_block:,} emails)",
                    blocks,
                    addons.extra_emails,
                    blocks * addons.extra_emails,
                    period.start,
                    period.end,
                    {
                        "emails_sent": usage.emails_sent,
                        "included_emails": included,
                        "extra_emails": extra,
                        "block": addons.extra_emails_block,
                    },
                )
            )
    extra_ips = usage.dedicated_ips - final.included_dedicated_ips
    if extra_ips > 0:
        lines.append(
            Line(
                "addon",
                f"Dedicated IPs: {usage.dedicated_ips}, {final.included_dedicated_ips} included",
                extra_ips,
                addons.dedicated_ip,
                extra_ips * addons.dedicated_ip,
                period.start,
                period.end,
                {"dedicated_ips": usage.dedicated_ips, "included": final.included_dedicated_ips},
            )
        )
    for server in usage.servers:
        if not server.monthly_cost_cents or not server.days:
            continue
        amount = prorate(server.monthly_cost_cents, server.days, period.days)
        span = "" if server.days == period.days else f", {server.days} of {period.days} days"
        lines.append(
            Line(
                "infrastructure",
                f"Server {server.name} ({server.provider}, "
                f"{_money(server.monthly_cost_cents, cur)}/month){span}",
                1,
                amount,
                amount,
                period.end - server.days * DAY,
                period.end,
                {
                    "server": server.name,
                    "provider": server.provider,
                    "days": server.days,
                    "monthly_cost_cents": server.monthly_cost_cents,
                },
            )
        )
    snapshot = usage.to_json()
    snapshot["included_emails"] = included
    snapshot["plans"] = [
        {"plan": s.plan, "version": s.version.version, "first_day": str(s.first), "days": s.days}
        for s in segs
    ]
    return Draft(usage.tenant, period, cur, lines, snapshot)


def preview(conn: Any, catalog: Catalog, tenant: str, period: Period) -> Draft:
    """The invoice ``tenant`` would get for ``period`` from the state as it is now."""
    history.backfill(conn)
    found = history.assignments(conn, tenant, period.start, period.end)
    return compute(catalog, found, measure(conn, tenant, period), period)


# -- writing ----------------------------------------------------------------------------------
def invoice_number(tenant: str, period: Period) -> str:
    return f"INV-{period}-{tenant}"


def _insert(conn: Any, draft: Draft, now: datetime) -> int:
    invoice_id = conn.execute(
        sa.insert(t.invoices)
        .values(
            number=invoice_number(draft.tenant, draft.period),
            tenant=draft.tenant,
            period=str(draft.period),
            period_start=draft.period.start,
            period_end=draft.period.end,
            currency=draft.currency,
            subtotal_cents=draft.total_cents,
            total_cents=draft.total_cents,
            status="issued",
            usage=draft.usage,
            payment_attempts=0,
            created_at=now,
            updated_at=now,
        )
        .returning(t.invoices.c.id)
    ).scalar_one()
    if draft.lines:
        conn.execute(
            sa.insert(t.lines),
            [
                {"invoice_id": invoice_id, "position": i, "stripe_item_id": None, **asdict(line)}
                for i, line in enumerate(draft.lines, start=1)
            ],
        )
    return invoice_id


@dataclass
class RunResult:
    tenant: str
    status: str  # created | exists | failed
    invoice_id: int | None = None
    number: str | None = None
    total_cents: int | None = None
    currency: str | None = None
    error: str | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)


def run(
    engine: Any,
    catalog: Catalog,
    period: Period,
    *,
    today: date,
    tenants: Iterable[str] | None = None,
    actor: str = "billing",
    now: Callable[[], datetime] | None = None,
    on_result: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Invoice every tenant that had a plan in ``period`` (or only ``tenants``). Idempotent."""
    from penguinctl.billing import budgets
    from penguinctl.events.outbox import emit
    from penguinctl.state import audit
    from penguinctl.state.models import utcnow

    clock = now or utcnow
    if not period.ended(today):
        raise UsageError(
            f"period {period} has not ended yet (it ends {period.next.first_day} 00:00 UTC)",
            hint="bill a month after it ends; `billing usage TENANT` previews the current one",
        )
    with engine.begin() as conn:
        history.backfill(conn)
        billed = history.billed_tenants(conn, period.start, period.end)
    wanted = billed if tenants is None else list(tenants)
    unknown = sorted(set(wanted) - set(billed))
    if unknown:
        raise NotFound(
            f"tenant(s) {', '.join(unknown)} had no plan in {period}",
            hint="`penguinctl get tenants` lists recorded tenants",
        )
    results: list[RunResult] = []
    for tenant in wanted:
        result = RunResult(tenant, "exists")
        try:
            with engine.begin() as conn:
                existing = conn.execute(
                    sa.select(
                        t.invoices.c.id,
                        t.invoices.c.number,
                        t.invoices.c.total_cents,
                        t.invoices.c.currency,
                    ).where(t.invoices.c.tenant == tenant, t.invoices.c.period == str(period))
                ).first()
                if existing is not None:
                    result = RunResult(tenant, "exists", *existing)
                else:
                    stamp = clock()
                    ensure_account(conn, tenant, stamp)
                    draft = preview(conn, catalog, tenant, period)
                    invoice_id = _insert(conn, draft, stamp)
                    audit.record_many(
                        conn,
                        [
                            {
                                "actor": actor,
                                "tenant": tenant,
                                "action": "billing.invoice",
                                "resource": f"invoice/{tenant}/{period}",
                                "result": "ok",
                                "details": {
                                    "number": invoice_number(tenant, period),
                                    "total_cents": draft.total_cents,
                                    "currency": draft.currency,
                                    "lines": len(draft.lines),
                                },
                            }
                        ],
                    )
                    emit(
                        conn,
                        "invoice.created",
                        tenant=tenant,
                        subject=f"invoice/{invoice_number(tenant, period)}",
                        payload={
                            "invoice": invoice_number(tenant, period),
                            "period": str(period),
                            "total_cents": draft.total_cents,
                            "currency": draft.currency,
                        },
                    )
                    result = RunResult(
                        tenant,
                        "created",
                        invoice_id,
                        invoice_number(tenant, period),
                        draft.total_cents,
                        draft.currency,
                    )
                    result.alerts = budgets.evaluate(
                        conn, tenant, period, draft, catalog, now=stamp, actor=actor
                    )
        except IntegrityError:
            result = RunResult(tenant, "exists")  # another run created it meanwhile
        except PenguinError as exc:
            result = RunResult(tenant, "failed", error=str(exc))
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


# -- reading ----------------------------------------------------------------------------------
def list_invoices(
    conn: Any, *, period: str | None = None, tenant: str | None = None
) -> list[dict[str, Any]]:
    c = t.invoices.c
    stmt = sa.select(t.invoices).order_by(c.period, c.tenant)
    if period:
        stmt = stmt.where(c.period == period)
    if tenant:
        stmt = stmt.where(c.tenant == tenant)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def get_invoice(conn: Any, ref: str) -> dict[str, Any]:
    """An invoice with its lines, by id or number."""
    c = t.invoices.c
    cond = c.id == int(ref) if ref.isdecimal() else c.number == ref
    row = conn.execute(sa.select(t.invoices).where(cond)).first()
    if row is None:
        raise NotFound(
            f"invoice {ref!r} not found", hint="`penguinctl invoices list` shows ids and numbers"
        )
    invoice = dict(row._mapping)
    invoice["lines"] = [
        dict(r._mapping)
        for r in conn.execute(
            sa.select(t.lines)
            .where(t.lines.c.invoice_id == invoice["id"])
            .order_by(t.lines.c.position)
        )
    ]
    return invoice
