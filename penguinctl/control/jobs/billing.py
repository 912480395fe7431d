"""``billing-run`` (invoice the previous month; unique per tenant and period, so it happens
once however often it runs), ``billing-sync`` (Stripe push and status, as ``billing sync``),
``billing-alerts`` and ``dunning`` (failed-payment retries and suspension). The Stripe jobs are
skipped while ``STRIPE_API_KEY`` is not set."""

from __future__ import annotations

from typing import Any

from penguinctl.control.registry import JobFailed, JobSkipped


def _catalog(ctx: Any) -> Any:
    from penguinctl.billing.catalog import load_catalog

    return load_catalog(ctx.app.env)


def run_invoices(ctx: Any) -> dict[str, Any]:
    from datetime import timedelta

    from penguinctl.billing import invoices
    from penguinctl.billing.periods import Period

    today = ctx.now().date()
    period = Period.containing(today.replace(day=1) - timedelta(days=1))  # the previous month
    results = invoices.run(
        ctx.app.db,
        _catalog(ctx),
        period,
        today=today,
        tenants=None,
        actor=ctx.actor,
        now=ctx.clock.now,
    )
    summary = {
        "period": str(period),
        "created": [r.number for r in results if r.status == "created"],
        "existing": sum(r.status == "exists" for r in results),
        "failed": [{"tenant": r.tenant, "error": r.error} for r in results if r.status == "failed"],
    }
    if summary["failed"]:
        first = summary["failed"][0]
        raise JobFailed(
            f"{len(summary['failed'])} tenant(s) not invoiced for {period}: {first['tenant']}: "
            f"{first['error']}",
            summary=summary,
        )
    return summary


def _stripe(ctx: Any) -> Any:
    from penguinctl.billing.stripe_sync import StripeSync, client_from_env

    if not ctx.app.env.get("STRIPE_API_KEY"):
        raise JobSkipped("STRIPE_API_KEY is not set")
    return StripeSync(ctx.app.db, client_from_env(ctx.app.env), now=ctx.now(), actor=ctx.actor)


def run_sync(ctx: Any) -> dict[str, Any]:
    report = _stripe(ctx).run()
    data = report.to_json()
    if report.errors:
        first = report.errors[0]
        raise JobFailed(
            f"{len(report.errors)} invoice(s) not synced: {first['invoice']}: {first['error']}",
            summary=data,
        )
    return data


def run_dunning(ctx: Any) -> dict[str, Any]:
    from penguinctl.billing import dunning

    syncer = _stripe(ctx)
    steps = dunning.process(ctx.app.db, syncer._retry, ctx.now())
    return {"steps": [s.__dict__ for s in steps]}


def run_alerts(ctx: Any) -> dict[str, Any]:
    from penguinctl.billing.periods import Period
    from penguinctl.billing.service import evaluate_alerts

    period = Period.containing(ctx.now().date())
    alerts = evaluate_alerts(ctx.app.db, _catalog(ctx), period, now=ctx.now(), actor=ctx.actor)
    return {"period": str(period), "alerts": alerts, "new": sum(bool(a["new"]) for a in alerts)}
