"""`billing run / usage / sync / budget / plans / alerts` and `invoices list / show / export`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from penguinctl.cli.conventions import ROWS, examples, output_formats

billing_app = typer.Typer(
    help="Monthly billing: invoices, usage, Stripe sync, budgets.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl billing run --period 2026-11",
        "penguinctl billing usage acme",
        "penguinctl billing budget acme 500",
    ),
)
invoices_app = typer.Typer(
    help="Invoices recorded by `billing run`.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl invoices list --period 2026-11",
        "penguinctl invoices show INV-2026-11-acme -o html > invoice.html",
        "penguinctl invoices export --period 2026-11 --out invoices.csv",
    ),
)

PeriodOpt = Annotated[
    str | None, typer.Option("--period", metavar="YYYY-MM", help="YYYY-MM (UTC month).")
]


def register(app: typer.Typer) -> None:
    app.add_typer(billing_app, name="billing")
    app.add_typer(invoices_app, name="invoices")


def _now(app):
    """Now, from the invocation's clock (``PENGUINCTL_TODAY`` and friends shift it)."""
    return app.now()


def _catalog(app):
    from penguinctl.billing.catalog import load_catalog

    return load_catalog(app.env)


def _period(app, text: str | None):
    from penguinctl.billing.periods import Period

    return Period.parse(text) if text else Period.containing(app.today())


@contextmanager
def _progress(app, label: str, total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr for long runs in a terminal; a no-op otherwise."""
    if app.machine or total < 10 or not app.err.is_terminal:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        label, BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=app.err,
        transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


def _money(cents: int | None, currency: str | None = "usd") -> str:
    from penguinctl.billing.render import money

    return "" if cents is None else money(cents, currency or "usd")


# -- billing ----------------------------------------------------------------------------------
@billing_app.command("run")
def run(
    ctx: typer.Context,
    period: Annotated[
        str, typer.Option("--period", metavar="YYYY-MM", help="YYYY-MM (UTC month), ended.")
    ],
    tenant: Annotated[
        list[str] | None,
        typer.Option("--tenant", metavar="TENANT", help="Only this tenant (repeatable)."),
    ] = None,
) -> None:
    """Invoice every tenant for a month: one invoice per tenant and period. Re-running changes
    nothing; an interrupted run resumes where it stopped."""
    from penguinctl.billing import history, invoices
    from penguinctl.billing.budgets import describe
    from penguinctl.errors import PartialApply

    app = ctx.obj
    p = _period(app, period)
    catalog = _catalog(app)
    with app.db.begin() as conn:
        history.backfill(conn)
        total = len(tenant or history.billed_tenants(conn, p.start, p.end))
    with _progress(app, "invoicing", total) as advance:
        results = invoices.run(
            app.db,
            catalog,
            p,
            today=app.today(),
            tenants=tenant,
            actor=app.actor(),
            now=lambda: _now(app),
            on_result=lambda _r: advance(),
        )
    data = {
        "period": str(p),
        "created": sum(r.status == "created" for r in results),
        "existing": sum(r.status == "exists" for r in results),
        "failed": sum(r.status == "failed" for r in results),
        "invoices": [r.__dict__ for r in results],
    }

    def text(console) -> None:
        from rich.markup import escape

        from penguinctl.cli.render import table

        rows = [
            [r.tenant, r.number or "", r.status, _money(r.total_cents, r.currency), r.error or ""]
            for r in results
        ]
        table(console, ["tenant", "invoice", "result", "total", "error"], rows)
        for r in results:
            for alert in r.alerts:
                if alert["new"]:
                    console.print(f"[yellow]warning:[/] {escape(describe(alert))}")
        console.print(
            f"{p}: {data['created']} created, {data['existing']} already invoiced, "
            f"{data['failed']} failed."
        )

    app.emit(data, text)
    if data["failed"]:
        failed = [r for r in results if r.status == "failed"]
        raise PartialApply(
            f"{len(failed)} tenant(s) not invoiced for {p}: {failed[0].tenant}: {failed[0].error}",
            hint="fix the cause and run `penguinctl billing run` again; it resumes",
        )


@billing_app.command("usage")
def usage(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Argument(metavar="TENANT", help="The tenant.")],
    period: PeriodOpt = None,
) -> None:
    """A tenant's usage and invoice preview for a month (default: the current one)."""
    from penguinctl.billing import budgets, invoices
    from penguinctl.billing.budgets import describe

    app = ctx.obj
    p = _period(app, period)
    catalog = _catalog(app)
    with app.db.begin() as conn:
        draft = invoices.preview(conn, catalog, tenant, p)
        invoices.ensure_account(conn, tenant, _now(app))
        alerts = budgets.evaluate(conn, tenant, p, draft, catalog, now=_now(app), actor=app.actor())
    data = {
        "tenant": tenant,
        "period": str(p),
        "usage": draft.usage,
        "currency": draft.currency,
        "lines": [
            {k: v for k, v in line.__dict__.items() if k not in ("period_start", "period_end")}
            for line in draft.lines
        ],
        "total_cents": draft.total_cents,
        "alerts": alerts,
        "final": p.ended(app.today()),
    }

    def text(console) -> None:
        from rich.markup import escape

        from penguinctl.cli.render import table

        u = draft.usage
        included = u.get("included_emails")
        console.print(
            f"[bold]{escape(tenant)}[/] {p}{'' if data['final'] else ' (month in progress)'}: "
            f"emails sent {u['emails_sent']:,}"
            + (f" of {included:,} included" if included is not None else "")
            + f"; domains {u['domains']}, mailboxes {u['mailboxes']}, "
            f"servers {len(u['servers'])}, dedicated IPs {u['dedicated_ips']}"
        )
        table(
            console, ["item", "amount"],
            [[line.description, _money(line.amount_cents, draft.currency)] for line in draft.lines]
            + [["Total", _money(draft.total_cents, draft.currency)]],
        )  # fmt: skip
        for warning in u.get("warnings", []):
            console.print(f"[yellow]warning:[/] {escape(warning)}")
        for alert in alerts:
            console.print(f"[yellow]warning:[/] {escape(describe(alert))}")

    app.emit(data, text)


@billing_app.command("sync")
def sync(ctx: typer.Context) -> None:
    """Push invoices to Stripe (STRIPE_API_KEY, STRIPE_API_BASE), charge them, bring back their
    status (paid, failed) and run the dunning schedule (retries on days 3, 5, 7; then
    read-only suspension and paused campaigns)."""
    import sqlalchemy as sa

    from penguinctl.billing import tables
    from penguinctl.billing.stripe_sync import StripeSync, client_from_env
    from penguinctl.errors import PartialApply, ProviderError

    app = ctx.obj
    client = client_from_env(app.env)
    with app.db.connect() as conn:
        total = (
            conn.execute(
                sa.select(sa.func.count()).where(
                    tables.invoices.c.status.in_(("issued", "payment_failed"))
                )
            ).scalar()
            or 0
        )
    syncer = StripeSync(app.db, client, now=_now(app), actor=app.actor())
    with _progress(app, "syncing", total) as advance:
        report = syncer.run(on_step=advance)
    data = report.to_json()

    def text(console) -> None:
        from rich.markup import escape

        console.print(
            f"Stripe: {len(report.pushed)} pushed, {len(report.paid)} paid, "
            f"{len(report.failed_payments)} payment(s) failed, {len(report.closed)} closed "
            f"(void or uncollectible), {report.unchanged} unchanged."
        )
        for step in report.dunning:
            console.print(f"  dunning: {step['invoice']} ({step['tenant']}): {step['action']}")
        for err in report.errors:
            console.print(f"[red]error:[/] {escape(err['invoice'])}: {escape(err['error'])}")

    app.emit(data, text)
    if report.errors:
        first = report.errors[0]
        msg = f"{len(report.errors)} invoice(s) not synced: {first['invoice']}: {first['error']}"
        hint = "fix the cause and run `penguinctl billing sync` again; it resumes"
        if report.pushed or report.paid:
            raise PartialApply(msg, hint=hint)
        raise ProviderError(msg, hint=hint)


@billing_app.command("budget")
def budget(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Argument(metavar="TENANT", help="The tenant.")],
    amount: Annotated[str, typer.Argument(help="Monthly budget in dollars, or 'none'.")],
) -> None:
    """Set a tenant's monthly budget: warnings at 80% and 100% of it."""
    from decimal import Decimal, InvalidOperation

    from penguinctl.billing.budgets import set_budget
    from penguinctl.errors import UsageError
    from penguinctl.state import audit

    app = ctx.obj
    cents: int | None = None
    if amount.lower() != "none":
        try:
            value = Decimal(amount.lstrip("$"))
        except InvalidOperation:
            value = Decimal(-1)
        if value < 0 or value != value.quantize(Decimal("0.01")):
            raise UsageError(f"budget {amount!r}: give dollars, e.g. 500 or 499.99, or none")
        cents = int(value * 100)
    with app.db.begin() as conn:
        set_budget(conn, tenant, cents, _now(app))
        audit.record_many(
            conn,
            [
                {
                    "actor": app.actor(),
                    "tenant": tenant,
                    "action": "billing.budget",
                    "resource": f"billing/{tenant}",
                    "result": "ok",
                    "details": {"budget_cents": cents},
                }
            ],
        )
    app.emit(
        {"tenant": tenant, "budget_cents": cents},
        lambda c: c.print(f"{tenant}: budget {_money(cents) if cents is not None else 'none'}"),
    )


@billing_app.command("alerts")
def alerts(ctx: typer.Context, period: PeriodOpt = None) -> None:
    """Check every tenant's usage so far against 80%/100% of its included emails and budget;
    new warnings are recorded once (run it daily from cron)."""
    from penguinctl.billing import budgets
    from penguinctl.billing.service import evaluate_alerts

    app = ctx.obj
    p = _period(app, period)
    out = evaluate_alerts(app.db, _catalog(app), p, now=_now(app), actor=app.actor())

    def text(console) -> None:
        if not out:
            console.print(f"{p}: no tenant is at 80% of its included emails or budget.")
        for alert in out:
            mark = "[yellow]new[/]" if alert["new"] else "   "
            console.print(f"{mark} {budgets.describe(alert)}")

    app.emit(out, text)


@billing_app.command("plans")
def plans(ctx: typer.Context) -> None:
    """The plan catalog in use (packaged, or $PENGUINCTL_HOME/config/plans.yaml)."""
    app = ctx.obj
    catalog = _catalog(app)
    today = app.today()
    data = {
        "source": catalog.source,
        "currency": catalog.currency,
        "plans": {
            name: {**plan.model_dump(mode="json"), "current_version": plan.current(today).version}
            for name, plan in catalog.plans.items()
        },
    }

    def text(console) -> None:
        from penguinctl.cli.render import table

        rows = []
        for name, plan in catalog.plans.items():
            v = plan.current(today)
            rows.append([
                name, f"v{v.version}",
                "custom" if v.monthly_price is None else _money(v.monthly_price, catalog.currency),
                "unlimited" if v.included_emails is None else f"{v.included_emails:,}",
                plan.limits.domains if plan.limits.domains is not None else "unlimited",
                "yes" if plan.purchasable else "no",
            ])  # fmt: skip
        table(
            console,
            ["plan", "version", "price/month", "emails", "domains", "purchasable"],
            rows,
            title=f"Plans ({catalog.source})",
        )

    app.emit(data, text)


# -- invoices ---------------------------------------------------------------------------------
@invoices_app.command("list")
@output_formats(*ROWS)
def list_invoices(
    ctx: typer.Context,
    period: PeriodOpt = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", metavar="TENANT", help="Only this tenant's.")
    ] = None,
) -> None:
    """Invoices, oldest period first."""
    from penguinctl.billing import invoices
    from penguinctl.billing.render import to_json

    app = ctx.obj
    with app.read_db.connect() as conn:
        rows = invoices.list_invoices(conn, period=period, tenant=tenant)
    data = [{k: v for k, v in to_json(r).items() if k != "usage"} for r in rows]

    def text(console) -> None:
        from penguinctl.cli.render import table

        table(
            console, ["id", "number", "tenant", "period", "total", "status", "stripe"],
            [[r["id"], r["number"], r["tenant"], r["period"],
              _money(r["total_cents"], r["currency"]), r["status"], r["stripe_status"] or ""]
             for r in rows],
        )  # fmt: skip

    app.emit(data, text)


@invoices_app.command("show")
@output_formats(*ROWS, "html")
def show(
    ctx: typer.Context,
    invoice: Annotated[str, typer.Argument(help="Invoice id or number.")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="FORMAT",
            hidden=True,  # before -o applied here: text, html, json or csv
            help="The same as -o (kept for scripts written before it).",
        ),
    ] = None,
) -> None:
    """One invoice with its lines. `-o html` renders the invoice a person would send; `-o csv`
    gives one row per line, `-o json` and `-o yaml` the whole invoice."""
    from penguinctl.billing import invoices, render
    from penguinctl.errors import UsageError

    app = ctx.obj
    output = fmt or app.output
    if output not in ("text", "wide", "json", "yaml", "csv", "html"):
        raise UsageError(f"--format {output!r}: use -o text, json, yaml, csv or html")
    with app.read_db.connect() as conn:
        inv = invoices.get_invoice(conn, invoice)
    if output == "html":
        print(render.html(inv, contact=_contact(app, inv["tenant"])))
        return
    if output == "csv":
        print(render.to_csv([inv]), end="")
        return
    if output in ("json", "yaml"):
        from penguinctl.cli.render import dump

        print(_json(render.to_json(inv)) if output == "json" else dump(render.to_json(inv), "yaml"))
        return

    def text(console) -> None:
        from penguinctl.cli.render import table

        console.print(
            f"[bold]{inv['number']}[/] {inv['tenant']} {inv['period']} - {inv['status']}"
            + (
                f" (Stripe {inv['stripe_invoice_id']}: {inv['stripe_status']})"
                if inv["stripe_invoice_id"]
                else ""
            )
        )
        table(
            console, ["#", "description", "qty", "unit", "amount"],
            [[line["position"], line["description"], line["quantity"],
              _money(line["unit_amount_cents"], inv["currency"]),
              _money(line["amount_cents"], inv["currency"])] for line in inv["lines"]]
            + [["", "Total", "", "", _money(inv["total_cents"], inv["currency"])]],
        )  # fmt: skip

    text(app.out)


def _json(data: Any) -> str:
    import json

    return json.dumps(data, indent=2)


def _contact(app, tenant: str) -> str | None:
    import sqlalchemy as sa

    from penguinctl.state.models import ResourceRow

    resources = ResourceRow.__table__
    with app.read_db.connect() as conn:
        data = conn.execute(
            sa.select(resources.c.data).where(
                resources.c.kind == "tenant", resources.c.tenant == tenant
            )
        ).scalar()
    contact = (data or {}).get("contact")
    return contact if isinstance(contact, str) else None


@invoices_app.command("export")
@output_formats("text")
def export(
    ctx: typer.Context,
    period: PeriodOpt = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", metavar="TENANT", help="Only this tenant's.")
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="File format: csv (one row per invoice line) or json.",
        ),
    ] = "csv",
    out: Annotated[
        str | None, typer.Option("--out", metavar="FILE", help="Write to FILE (default stdout).")
    ] = None,
) -> None:
    """Invoices with their lines as CSV (one row per line) or JSON."""
    from pathlib import Path

    from penguinctl.billing import invoices, render
    from penguinctl.errors import UsageError

    app = ctx.obj
    if fmt not in ("csv", "json"):
        raise UsageError(f"--format {fmt!r}: use csv or json")
    with app.read_db.connect() as conn:
        rows = [
            invoices.get_invoice(conn, str(r["id"]))
            for r in invoices.list_invoices(conn, period=period, tenant=tenant)
        ]
    text = render.to_csv(rows) if fmt == "csv" else render.dumps(rows) + "\n"
    if out is None:
        print(text, end="")
        return
    Path(out).write_text(text, encoding="utf-8")
    app.err.print(f"{len(rows)} invoice(s) written to {out}")
