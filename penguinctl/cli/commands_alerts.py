"""`alerts add | list | remove`: email digests of the events that matter, for people."""

from __future__ import annotations

from typing import Annotated

import typer

from penguinctl.cli.commands_events import TenantOpt, scope
from penguinctl.cli.conventions import examples

alerts_app = typer.Typer(
    help="Alert mails: a digest at most every N minutes (failed checks, listings, paused "
    "campaigns, failed backups and payments and jobs; recoveries), through the relay in "
    "PENGUINCTL_ALERT_SMTP.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl alerts add ops@acme.example --tenant acme --every 15m",
        "penguinctl alerts add oncall@example.net --events 'check.*' --events backup.failed",
        "penguinctl alerts list",
        "penguinctl alerts remove ops@acme.example --tenant acme",
    ),
)
EmailArg = Annotated[str, typer.Argument(metavar="EMAIL", help="Who gets the mails.")]


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")


@alerts_app.command("add")
def add(
    ctx: typer.Context,
    email: EmailArg,
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", "-t", metavar="TENANT", help="This tenant's events only."),
    ] = None,
    every: Annotated[
        str, typer.Option("--every", metavar="DURATION", help="At most one mail per (15m, 1h).")
    ] = "15m",
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--events",
            metavar="TYPE",
            help="Event types or patterns; default: the alert set (`events types`).",
        ),
    ] = None,
) -> None:
    """Mail EMAIL a digest of a tenant's (or, without --tenant, every) alert events."""
    from penguinctl.alerts import subscriptions
    from penguinctl.errors import UsageError
    from penguinctl.spec.durations import Duration

    app = ctx.obj
    try:
        minutes = int(Duration(every).total_seconds() // 60)
    except ValueError as exc:
        raise UsageError(f"--every {every!r}: {exc}") from None
    types = [t.strip() for item in events or [] for t in item.split(",") if t.strip()]
    sub = subscriptions.add(
        app.db,
        email,
        tenant=tenant or "",
        every_minutes=minutes,
        event_types=types,
        actor=app.actor(),
    )
    if app.env.get("PENGUINCTL_ALERT_SMTP") is None and not app.machine:
        app.err.print("note: set PENGUINCTL_ALERT_SMTP for serve (the relay the mails go through)")
    app.emit(
        sub,
        lambda c: c.print(
            f"{sub['email']} gets alerts for {sub['tenant'] or 'the platform'} at most every "
            f"{sub['every_minutes']} min",
            markup=False,
        ),
    )


@alerts_app.command("list")
def list_recipients(ctx: typer.Context, tenant: TenantOpt = None) -> None:
    """Alert recipients, their window and last mail."""
    from penguinctl.alerts import subscriptions

    app = ctx.obj
    found = subscriptions.list_subscriptions(app.db, tenant=scope(tenant))

    def text(console) -> None:
        from penguinctl.cli.render import table

        if not found:
            console.print("No alert recipients. Add one: penguinctl alerts add EMAIL")
            return
        rows = [
            [s["email"], s["tenant"] or "platform", f"{s['every_minutes']} min",
             ", ".join(s["events"]), s["last_sent_at"] or "-"]
            for s in found
        ]  # fmt: skip
        table(console, ["email", "tenant", "every", "events", "last mail"], rows)

    app.emit(found, text)


@alerts_app.command("remove")
def remove(
    ctx: typer.Context,
    email: EmailArg,
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", "-t", metavar="TENANT", help="The tenant it was added for."),
    ] = None,
) -> None:
    """Stop mailing EMAIL (for that tenant, or the platform)."""
    from penguinctl.alerts import subscriptions

    app = ctx.obj
    subscriptions.remove(app.db, email, tenant=tenant or "", actor=app.actor())
    app.emit({"removed": email}, lambda c: c.print(f"{email} gets no more alerts.", markup=False))
