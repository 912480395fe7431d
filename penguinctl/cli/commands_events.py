"""`events list | show | types | deliver | prune`: the event log and the delivery loop."""

from __future__ import annotations

from typing import Annotated

import typer

from penguinctl.cli.conventions import examples

events_app = typer.Typer(
    help="Events: what happened, kept in the state store and delivered to webhooks and alert "
    "mails.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl events list --tenant acme --since 24h",
        "penguinctl events list --type 'check.*' -o json",
        "penguinctl events deliver --once",
        "penguinctl events prune --older-than 90d --yes",
    ),
)

TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", "-t", metavar="TENANT", help="Only this tenant's (or 'platform')."),
]


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")


def scope(tenant: str | None) -> str | None:
    """``--tenant``: a tenant name, ``platform`` (``""``: platform-wide), or None (all)."""
    return "" if tenant == "platform" else tenant


@events_app.command("list")
def list_events(
    ctx: typer.Context,
    tenant: TenantOpt = None,
    types: Annotated[
        list[str] | None,
        typer.Option(
            "--type", metavar="TYPE", help="Event type or prefix pattern (check.*); repeatable."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="WHEN", help="A duration back (24h, 7d) or ISO time."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="At most N.")] = 100,
) -> None:
    """Events, newest first (JSON: the webhook bodies, plus `seq`)."""
    from penguinctl.events import query

    app = ctx.obj
    from penguinctl.cli import client_mode

    api = client_mode.client(app)
    if api is not None:
        after = query.parse_since(since, app.now())
        found = []
        for event in api.items(
            "/events",
            type=query.event_types(types) or None,
            tenant=tenant,
            since=after.isoformat() if after else None,
            limit=min(limit, 500),
        ):
            found.append(event)
            if len(found) >= limit:
                break
    else:
        found = query.list_events(
            app.db,
            tenant=scope(tenant),
            types=query.event_types(types),
            since=query.parse_since(since, app.now()),
            limit=max(1, min(limit, 10_000)),
        )

    def text(console) -> None:
        from rich.markup import escape

        from penguinctl.alerts.digest import describe
        from penguinctl.cli.render import table

        if not found:
            console.print("No events.")
            return
        rows = [
            [e["timestamp"][:19], e["tenant"] or "-", e["type"], escape(describe(e)), e["id"]]
            for e in found
        ]
        table(console, ["time (UTC)", "tenant", "type", "what", "id"], rows)

    app.emit(found, text)


@events_app.command("show")
def show(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(metavar="EVENT_ID", help="The event's id (evt_...).")],
) -> None:
    """One event, as its webhook body."""
    from penguinctl.cli.render import dump
    from penguinctl.errors import NotFound
    from penguinctl.events.query import get_event

    app = ctx.obj
    found = get_event(app.db, event_id)
    if found is None:
        raise NotFound(f"no event {event_id}", hint="`penguinctl events list` shows ids")
    app.emit(found, lambda c: c.print(dump(found, "json"), markup=False))


@events_app.command("types")
def types(ctx: typer.Context) -> None:
    """The catalogue: every event type, whose it is, what emits it."""
    from penguinctl.events import catalogue

    data = [
        {
            "type": t.name,
            "tenant": t.scope,
            "emitted_by": t.emitted_by,
            "description": t.description,
            "alert_default": t.name in catalogue.ALERT_TYPES,
        }
        for t in catalogue.TYPES
    ]

    def text(console) -> None:
        from penguinctl.cli.render import table

        table(console, ["type", "tenant", "meaning"], [[d["type"], d["tenant"],
              d["description"]] for d in data])  # fmt: skip

    ctx.obj.emit(data, text)


@events_app.command("deliver")
def deliver(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    interval: Annotated[
        float,
        typer.Option("--interval", metavar="SECONDS", help="Idle wait between passes."),
    ] = 0.5,
    concurrency: Annotated[
        int, typer.Option("--concurrency", metavar="N", help="Requests in flight at once.")
    ] = 8,
) -> None:
    """Relay new events, deliver due webhooks, mail due alert digests (what `serve` runs in
    its event loop). Without --once it runs until interrupted."""
    import signal
    import threading

    from penguinctl.events.loop import EventLoop

    app = ctx.obj
    loop = EventLoop(
        app.db,
        app.secrets(),
        env=app.env,
        clock=app.clock,
        owner=f"cli:{app.actor()}",
        concurrency=max(1, min(concurrency, 64)),
    )
    try:
        if once:
            done = loop.run_once()
            w = done["webhooks"]
            app.emit(
                done,
                lambda c: c.print(
                    f"{done['relayed']} event(s) relayed; {w['attempted']} webhook attempt(s): "
                    f"{w['succeeded']} delivered, {w['retrying']} to retry, {w['exhausted']} "
                    f"given up; {len(done['digests'])} alert mail(s)"
                ),
            )
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        app.err.print("delivering events (Ctrl-C stops)")
        try:
            loop.run(stop, interval=max(0.05, interval))
        except KeyboardInterrupt:
            stop.set()
    finally:
        loop.close()


@events_app.command("prune")
def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option("--older-than", metavar="DURATION", help="Age of the events to remove."),
    ] = "90d",
) -> None:
    """Remove events older than DURATION with their finished deliveries, attempts and mailed
    alert items (events still being delivered stay)."""
    from penguinctl.errors import UsageError
    from penguinctl.events.retention import prune as run
    from penguinctl.spec.durations import Duration

    app = ctx.obj
    try:
        age = Duration(older_than)
    except ValueError as exc:
        raise UsageError(f"--older-than {older_than!r}: {exc}") from None
    before = app.now() - age
    if not app.yes and not app.machine:
        typer.confirm(f"Remove events from before {before:%Y-%m-%d %H:%M} UTC?", abort=True)
    counts = run(app.db, before=before, actor=app.actor())
    app.emit(
        {"before": before.isoformat(), **counts},
        lambda c: c.print(
            f"Removed {counts['events']} event(s), {counts['deliveries']} delivery(ies), "
            f"{counts['attempts']} attempt(s), {counts['alert_items']} alert item(s)."
        ),
    )
