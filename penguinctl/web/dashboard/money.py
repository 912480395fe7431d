"""The Billing page: usage so far this month against the plan (the invoice preview the CLI's
`billing usage` shows), the budget, and the invoices (each with its HTML rendering)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl.state.models import ResourceRow

_R = ResourceRow.__table__
MAX_TENANTS = 200


def tenants(engine: sa.Engine, scope: str | None) -> list[str]:
    stmt = sa.select(_R.c.name).where(_R.c.kind == "tenant").order_by(_R.c.name)
    if scope is not None:
        stmt = stmt.where(_R.c.name == scope)
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(stmt.limit(MAX_TENANTS))]


def _bar(label: str, used: int, allowed: int | None) -> dict[str, Any]:
    share = None if not allowed else used / allowed
    return {
        "label": label,
        "used": used,
        "allowed": allowed,
        "share": share,
        "status": "unknown"
        if share is None
        else "fail"
        if share >= 1
        else "warn"
        if share >= 0.8
        else "ok",
    }


def overview(
    engine: sa.Engine, scope: str | None, env: dict[str, str], now: datetime
) -> list[dict]:
    from penguinctl.billing import invoices
    from penguinctl.billing import tables as t
    from penguinctl.billing.catalog import load_catalog
    from penguinctl.billing.periods import Period
    from penguinctl.billing.render import money
    from penguinctl.errors import PenguinError

    period = Period.containing(now.date())
    out = []
    try:
        catalog = load_catalog(env)
    except PenguinError as exc:
        return [{"tenant": "", "error": str(exc)}]
    for tenant in tenants(engine, scope):
        item: dict[str, Any] = {"tenant": tenant, "period": str(period), "error": None}
        try:
            with engine.begin() as conn:
                draft = invoices.preview(conn, catalog, tenant, period)
                account = conn.execute(
                    sa.select(t.accounts).where(t.accounts.c.tenant == tenant)
                ).first()
                item["invoices"] = invoices.list_invoices(conn, tenant=tenant)[-24:][::-1]
        except PenguinError as exc:
            item["error"] = str(exc)
            out.append(item)
            continue
        u = draft.usage
        plans = u.get("plans") or []
        plan = catalog.plans.get(plans[-1]["plan"]) if plans else None
        limits = plan.limits if plan is not None else None
        item["plan"] = plan.name if plan is not None else "-"
        item["bars"] = [
            _bar("Emails sent", int(u.get("emails_sent", 0)), u.get("included_emails")),
            _bar("Domains", int(u.get("domains", 0)), limits.domains if limits else None),
            _bar("Mailboxes", int(u.get("mailboxes", 0)), limits.mailboxes if limits else None),
        ]
        item["total"] = money(draft.total_cents, draft.currency)
        item["lines"] = [
            (line.description, money(line.amount_cents, draft.currency)) for line in draft.lines
        ]
        budget = account.budget_cents if account is not None else None
        item["budget"] = money(budget, draft.currency) if budget is not None else None
        item["budget_bar"] = (
            _bar("Spend vs budget", draft.total_cents, budget) if budget is not None else None
        )
        item["account_status"] = account.status if account is not None else "active"
        item["money"] = lambda c, cur=draft.currency: money(c, cur)
        out.append(item)
    return out


def invoice_html(engine: sa.Engine, scope: str | None, number: str) -> str | None:
    from penguinctl.billing import invoices, render
    from penguinctl.errors import NotFound

    with engine.connect() as conn:
        try:
            invoice = invoices.get_invoice(conn, number)
        except NotFound:
            return None
        if scope is not None and invoice["tenant"] != scope:
            return None
        contact = conn.execute(
            sa.select(_R.c.data).where(_R.c.kind == "tenant", _R.c.name == invoice["tenant"])
        ).scalar()
    return render.html(invoice, contact=(contact or {}).get("contact"))
