"""`server list / sync / forget-order` and `hostwinds prices`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from penguinctl.cli.conventions import ROWS, examples, output_formats

server_app = typer.Typer(
    help="The server fleet.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl server list",
        "penguinctl server exec 'uptime' --all --parallel 20",
        "penguinctl server playbook example mx1 --check",
        "penguinctl server ssh mx1 -- systemctl status docker",
    ),
)
hostwinds_app = typer.Typer(
    help="Hostwinds discovery helpers for writing specs.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl hostwinds prices",
        "penguinctl hostwinds prices -o json",
    ),
)


def register(app: typer.Typer) -> None:
    from penguinctl.cli.commands_rebuild import rebuild

    server_app.command("rebuild")(rebuild)
    app.add_typer(server_app, name="server")
    app.add_typer(hostwinds_app, name="hostwinds")


def _servers(app) -> list[Any]:
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    with session_scope(app.read_db) as session:
        return repo.list_resources(session, kind="server")


def _row(row) -> dict[str, Any]:
    d = row.data or {}
    ips = d.get("ips")
    return {
        "name": row.name,
        "tenant": row.tenant or None,
        "provider": d.get("provider"),
        "hostname": d.get("hostname"),
        "ips": ips if isinstance(ips, list) else [],
        "status": "ordering" if row.status == "pending" else (d.get("status") or "recorded"),
        "service_id": d.get("service_id"),
        "monthly_cost": d.get("monthly_cost"),
    }


@server_app.command("list")
@output_formats(*ROWS)
def list_servers(ctx: typer.Context) -> None:
    """Every recorded server (hostwinds, static, external): address, status, monthly cost."""
    from penguinctl.cli.render import table

    app = ctx.obj
    rows = [_row(r) for r in _servers(app)]

    def text(console) -> None:
        cells = [
            [
                r["name"],
                r["tenant"] or "-",
                r["provider"],
                r["hostname"],
                ", ".join(r["ips"]),
                r["status"],
                "" if r["monthly_cost"] is None else f"${r['monthly_cost']:.2f}",
            ]
            for r in rows
        ]
        table(
            console, ["name", "tenant", "provider", "hostname", "ips", "status", "cost/mo"], cells
        )
        total = sum(r["monthly_cost"] or 0 for r in rows)
        if total:
            console.print(f"Approximate monthly cost: ${total:.2f}")

    app.emit(rows, text)


@server_app.command("sync")
def sync(ctx: typer.Context) -> None:
    """Reconcile recorded Hostwinds servers with the account: status, IPs, servers terminated
    outside penguinctl. Records what changed (audited); the next plan updates DNS to match."""
    from penguinctl.providers.registry import hostwinds_client
    from penguinctl.resources import ResourceKey
    from penguinctl.state import audit, repo
    from penguinctl.state.db import session_scope

    app = ctx.obj
    rows = [r for r in _servers(app) if (r.data or {}).get("provider") == "hostwinds"]
    rows = [r for r in rows if r.status != "pending"]
    changes: list[dict[str, Any]] = []
    if rows:
        from penguinctl.providers.hostwinds import HostwindsProvider

        client = hostwinds_client(app.env, app.secrets())
        provider = HostwindsProvider("server:hostwinds", client=client)
        try:
            items = {ResourceKey("server", r.tenant, r.name): r.data for r in rows}
            live = provider.read_recorded(items)
        finally:
            provider.close()
        actor = app.actor()
        with session_scope(app.db) as session:
            for key, data in items.items():
                now = live.get(key)
                if now is None:
                    entry = {"server": key.name, "change": "terminated outside penguinctl"}
                    new = {**data, "status": "terminated"}
                else:
                    fields = [f for f in ("status", "ips", "main_ip") if now.get(f) != data.get(f)]
                    if not fields:
                        continue
                    entry = {
                        "server": key.name,
                        "change": ", ".join(f"{f}: {data.get(f)} -> {now.get(f)}" for f in fields),
                    }
                    new = {**data, **{f: now.get(f) for f in fields}}
                if new == data:
                    continue
                repo.upsert_resource(session, key=key, provider="server:hostwinds", data=new)
                audit.record(
                    session,
                    actor=actor,
                    tenant=key.tenant,
                    action="server.sync",
                    resource=str(key),
                    result="ok",
                    details={"change": entry["change"]},
                )
                changes.append(entry)

    def text(console) -> None:
        if not rows:
            console.print("No Hostwinds servers recorded.")
        elif not changes:
            console.print(f"[green]{len(rows)} server(s) match the account.[/]")
        for c in changes:
            console.print(f"[yellow]~[/] {c['server']}: {c['change']}")
        if changes:
            console.print("Run `penguinctl plan` to see the DNS changes this implies.")

    app.emit({"checked": len(rows), "changes": changes}, text)


@server_app.command("forget-order")
def forget_order(
    ctx: typer.Context,
    server: Annotated[str, typer.Argument(help="The server whose unfinished order to forget.")],
    tenant: Annotated[
        str | None, typer.Option("--tenant", metavar="TENANT", help="The server's tenant.")
    ] = None,
) -> None:
    """Forget an order Hostwinds never fulfilled, so the next apply may order again. Check the
    Hostwinds portal first: if the instance exists, apply adopts it instead."""
    from penguinctl.errors import NotFound, UsageError
    from penguinctl.resources import ResourceKey
    from penguinctl.state.journal import Journal

    app = ctx.obj
    pending = [r for r in _servers(app) if r.name == server and r.status == "pending"]
    if tenant is not None:
        pending = [r for r in pending if (r.tenant or "") == tenant]
    if not pending:
        raise NotFound(f"no unfinished order for server {server}")
    if len(pending) > 1:
        raise UsageError(f"server {server} has orders in several tenants", hint="pass --tenant")
    row = pending[0]
    if not app.yes:
        import sys

        if not sys.stdin.isatty():
            raise UsageError("forget-order needs confirmation", hint="add --yes")
        if not typer.confirm(
            f"Forget the order of {server} from {row.data.get('ordered_at')}? A new apply may "
            "order (and pay for) a new server.",
            default=False,
        ):
            raise UsageError("not confirmed; nothing was changed")
    journal = Journal(app.db, provider="server:hostwinds", actor=app.actor())
    journal.clear(ResourceKey("server", row.tenant, row.name))
    app.emit({"forgotten": server}, lambda c: c.print(f"Forgot the order of {server}."))


@hostwinds_app.command("prices")
def prices(ctx: typer.Context) -> None:
    """Plans and prices (get_price_list): the `rid` values a Server spec pins."""
    from penguinctl.providers.registry import hostwinds_client

    app = ctx.obj
    client = hostwinds_client(app.env, app.secrets())
    try:
        items = client.get_price_list()
    finally:
        client.close()
    keys = ("rid", "name", "cpu", "ram", "disk", "bandwidth", "monthly", "annually")
    rows = [{k: item.get(k) for k in keys} for item in items]

    def text(console) -> None:
        from penguinctl.cli.render import table

        table(console, list(keys), [[r[k] for k in keys] for r in rows])

    app.emit(rows, text)


# `server exec|playbook|ssh|trust-hostkey` live in their own module and hang off `server_app`.
from penguinctl.cli.commands_remote import attach as _attach_remote  # noqa: E402

_attach_remote(server_app)

__all__ = ["hostwinds_app", "register", "server_app"]
