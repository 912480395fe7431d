"""`webhooks add | list | remove | test | deliveries | redeliver | rotate-secret | enable |
disable`: Standard Webhooks endpoints per tenant or for the platform."""

from __future__ import annotations

from typing import Annotated

import typer

from penguinctl.cli.commands_events import TenantOpt, scope
from penguinctl.cli.conventions import examples

webhooks_app = typer.Typer(
    help="Webhook endpoints: events POSTed as Standard Webhooks (signed, retried for 27 h).",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl webhooks add https://hooks.example/pg --tenant acme --events 'check.*'",
        "penguinctl webhooks test ep_0123456789abcdef",
        "penguinctl webhooks deliveries ep_0123456789abcdef --attempts",
        "penguinctl webhooks redeliver evt_0123456789abcdef01234567",
    ),
)
EndpointArg = Annotated[str, typer.Argument(metavar="ENDPOINT", help="Endpoint id (ep_...).")]


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")


def _show(console, ep, secret: str | None = None) -> None:
    filt = ", ".join(ep["event_types"]) or "all events"
    console.print(
        f"{ep['id']} -> {ep['url']} ({ep['tenant'] or 'platform'}; {filt}; {ep['status']})",
        markup=False,
    )
    if secret:
        console.print(f"signing secret (shown once): {secret}", markup=False)


@webhooks_app.command("add")
def add(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Argument(metavar="URL", help="The https:// URL receiving the POSTs.")
    ],
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", "-t", metavar="TENANT", help="Only this tenant's events."),
    ] = None,
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--events", metavar="TYPE", help="Event types or patterns (check.*); default all."
        ),
    ] = None,
    description: Annotated[
        str, typer.Option("--description", metavar="TEXT", help="A note for people.")
    ] = "",
    allow_private: Annotated[
        bool,
        typer.Option("--allow-private", help="Allow loopback/private/link-local addresses."),
    ] = False,
) -> None:
    """Add an endpoint; prints its whsec_ signing secret once (kept in the secrets backend)."""
    from penguinctl.webhooks import endpoints

    app = ctx.obj
    types = [t for item in events or [] for t in item.split(",") if t.strip()]
    ep, secret = endpoints.add(
        app.db,
        app.secrets(),
        url,
        tenant=tenant or "",
        event_types=[t.strip() for t in types],
        description=description,
        allow_private=allow_private,
        actor=app.actor(),
    )
    data = {**ep.to_json(), "secret": secret}
    if url.startswith("http://") and not app.machine:
        app.err.print("warning: plain http: payloads travel unencrypted", markup=False)
    app.emit(data, lambda c: _show(c, data, secret))


@webhooks_app.command("list")
def list_endpoints(ctx: typer.Context, tenant: TenantOpt = None) -> None:
    """Endpoints with their filter, status and last success."""
    from penguinctl.webhooks import endpoints

    app = ctx.obj
    found = [e.to_json() for e in endpoints.list_endpoints(app.db, tenant=scope(tenant))]

    def text(console) -> None:
        from penguinctl.cli.render import table

        if not found:
            console.print("No webhook endpoints. Add one: penguinctl webhooks add URL")
            return
        rows = [
            [
                e["id"],
                e["tenant"] or "platform",
                e["url"],
                ", ".join(e["event_types"]) or "all",
                e["status"] + (f" ({e['disabled_reason']})" if e["disabled_reason"] else ""),
                e["last_success_at"] or "-",
            ]
            for e in found
        ]
        table(console, ["id", "tenant", "url", "events", "status", "last success"], rows)

    app.emit(found, text)


@webhooks_app.command("remove")
def remove(ctx: typer.Context, endpoint: EndpointArg, tenant: TenantOpt = None) -> None:
    """Remove an endpoint, its delivery log and its secret."""
    from penguinctl.webhooks import endpoints

    app = ctx.obj
    if not app.yes and not app.machine:
        typer.confirm(f"Remove webhook endpoint {endpoint} and its delivery log?", abort=True)
    ep = endpoints.remove(app.db, app.secrets(), endpoint, actor=app.actor(), tenant=scope(tenant))
    app.emit({"removed": ep.id}, lambda c: c.print(f"Removed {ep.id} ({ep.url}).", markup=False))


@webhooks_app.command("test")
def test(ctx: typer.Context, endpoint: EndpointArg, tenant: TenantOpt = None) -> None:
    """Send a webhook.test event to this endpoint now and show the answer."""
    from penguinctl.errors import ProviderError
    from penguinctl.webhooks import endpoints
    from penguinctl.webhooks.deliveries import send_test
    from penguinctl.webhooks.delivery import Deliverer

    app = ctx.obj
    endpoints.get(app.db, endpoint, tenant=scope(tenant))
    deliverer = Deliverer(app.db, app.secrets(), clock=app.clock, owner=f"cli:{app.actor()}")
    try:
        row = send_test(app.db, app.secrets(), endpoint, deliverer=deliverer)
    finally:
        deliverer.close()
    log = row.get("attempt_log") or [{}]
    last = log[-1]

    def text(console) -> None:
        console.print(
            f"{row['event']}: {last.get('outcome', 'not sent')} "
            f"(HTTP {last.get('status') or '-'}, {last.get('latency_ms', 0)} ms)"
            + (f": {last['error']}" if last.get("error") else ""),
            markup=False,
        )

    app.emit(row, text)
    if row["status"] != "succeeded":
        raise ProviderError(
            f"webhook endpoint {endpoint} did not accept the test event",
            hint="see the answer above; retries follow the schedule (`webhooks deliveries`)",
        )


@webhooks_app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None, typer.Argument(metavar="[ENDPOINT]", help="Only this endpoint's.")
    ] = None,
    tenant: TenantOpt = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status", metavar="STATUS", help="Only these: pending, delivering, succeeded, failed."
        ),
    ] = None,
    attempts: Annotated[
        bool, typer.Option("--attempts", help="With every attempt (status, latency, answer).")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="At most N.")] = 50,
) -> None:
    """The delivery log, newest first."""
    from penguinctl.webhooks.deliveries import list_deliveries

    app = ctx.obj
    found = list_deliveries(
        app.db,
        endpoint_id=endpoint,
        tenant=scope(tenant),
        status=status,
        attempts=attempts,
        limit=max(1, min(limit, 10_000)),
    )

    def text(console) -> None:
        from rich.markup import escape

        from penguinctl.cli.render import table

        if not found:
            console.print("No deliveries.")
            return
        rows = [
            [
                d["id"],
                d["endpoint"],
                d["type"],
                d["status"],
                d["attempts"],
                d["last_status"] or escape(d["last_error"] or "-"),
                d["next_attempt_at"] or d["delivered_at"] or "-",
                d["event"],
            ]
            for d in found
        ]
        table(console, ["#", "endpoint", "type", "status", "tries", "last", "next/done",
              "event"], rows)  # fmt: skip
        for d in found if attempts else []:
            for a in d["attempt_log"]:
                console.print(
                    f"  #{d['id']} try {a['attempt']} {a['at']}: {a['outcome']} "
                    f"HTTP {a['status'] or '-'} {a['latency_ms']} ms {a['error'] or ''} "
                    f"{a['response'][:80]!r}",
                    markup=False,
                )

    app.emit(found, text)


@webhooks_app.command("redeliver")
def redeliver(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="ID", help="A delivery number, or evt_... ")],
    tenant: TenantOpt = None,
) -> None:
    """Queue a delivery (or every delivery of an event) for one more attempt now."""
    from penguinctl.webhooks.deliveries import redeliver as queue

    app = ctx.obj
    ids = queue(app.db, ref, actor=app.actor(), tenant=scope(tenant))
    app.emit(
        {"queued": ids},
        lambda c: c.print(f"Queued {len(ids)} delivery(ies); `events deliver` or serve sends."),
    )


@webhooks_app.command("rotate-secret")
def rotate_secret(
    ctx: typer.Context,
    endpoint: EndpointArg,
    overlap: Annotated[
        str,
        typer.Option("--overlap", metavar="DURATION", help="Old secret also signs this long."),
    ] = "24h",
    tenant: TenantOpt = None,
) -> None:
    """A new signing secret; both sign during the overlap (space-separated signatures)."""
    from penguinctl.errors import UsageError
    from penguinctl.spec.durations import Duration
    from penguinctl.webhooks import endpoints

    app = ctx.obj
    try:
        span = Duration(overlap)
    except ValueError as exc:
        raise UsageError(f"--overlap {overlap!r}: {exc}") from None
    ep, secret = endpoints.rotate_secret(
        app.db, app.secrets(), endpoint, actor=app.actor(), overlap=span, tenant=scope(tenant)
    )
    data = {**ep.to_json(), "secret": secret, "overlap": str(span)}
    app.emit(data, lambda c: _show(c, data, secret))


def _set_status(ctx: typer.Context, endpoint: str, status: str, tenant: str | None) -> None:
    from penguinctl.webhooks import endpoints

    app = ctx.obj
    ep = endpoints.set_status(
        app.db,
        endpoint,
        status,
        actor=app.actor(),
        reason=f"disabled by {app.actor()}" if status == "disabled" else None,
        tenant=scope(tenant),
    )
    app.emit(ep.to_json(), lambda c: _show(c, ep.to_json()))


@webhooks_app.command("enable")
def enable(ctx: typer.Context, endpoint: EndpointArg, tenant: TenantOpt = None) -> None:
    """Resume deliveries to an endpoint (after it was disabled)."""
    _set_status(ctx, endpoint, "active", tenant)


@webhooks_app.command("disable")
def disable(ctx: typer.Context, endpoint: EndpointArg, tenant: TenantOpt = None) -> None:
    """Stop deliveries to an endpoint (new events are not queued for it meanwhile)."""
    _set_status(ctx, endpoint, "disabled", tenant)
