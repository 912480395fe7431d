"""`get KIND [NAME]` and `describe KIND NAME`: read-only views of the state store."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from penguinctl.cli.conventions import ROWS, output_formats
from penguinctl.services.kinds import KINDS

KIND_HELP = "One of " + ", ".join(KINDS) + " (singular names work too)."


def register(app: typer.Typer) -> None:
    app.command("get")(get)
    app.command("describe")(describe)


def _kind(kind: str) -> str:
    from penguinctl.services.kinds import kind_of

    return kind_of(kind)


def complete_kind(incomplete: str) -> list[str]:
    return [k for k in KINDS if k.startswith(incomplete.lower())]


def _rows(app, kind: str, name: str | None, tenant: str | None):
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    with session_scope(app.read_db) as session:
        return repo.list_resources(session, kind=kind, tenant=tenant, name=name)


def _summary(kind: str, row) -> dict[str, Any]:
    from penguinctl.services.resources import summary

    return summary(kind, row)


def _snapshots(app, server: str | None, tenant: str | None) -> list[dict[str, Any]]:
    from penguinctl.backup import records

    return [
        s
        for s in records.list_snapshots(app.read_db, server=server)
        if tenant is None or s["tenant"] == tenant
    ]


def _get_backups(app, server: str | None, tenant: str | None) -> None:
    """Recorded snapshots (``backup list`` asks the servers; this reads the state store)."""
    from penguinctl.cli.render import table

    items = [
        {
            "server": s["server"],
            "tenant": s["tenant"] or None,
            "snapshot": s["short_id"],
            "time": s["taken_at"].isoformat(timespec="seconds"),
            "repository": s["repository"],
            "files_new": (s["stats"] or {}).get("files_new"),
        }
        for s in _snapshots(app, server, tenant)
    ]

    def text(console) -> None:
        if not items:
            console.print("No backups recorded.")
            return
        table(console, list(items[0]), [list(i.values()) for i in items])

    app.emit(items, text)


def _get_invoices(app, name: str | None, tenant: str | None) -> None:
    """Recorded invoices (``invoices list`` has the period filter)."""
    from penguinctl.billing import invoices
    from penguinctl.billing.render import to_json
    from penguinctl.cli.render import table

    with app.read_db.connect() as conn:
        rows = invoices.list_invoices(conn, tenant=tenant)
    keep = ("id", "number", "tenant", "period", "total_cents", "currency", "status")
    items = [
        {k: v for k, v in to_json(r).items() if k in keep}
        for r in rows
        if name is None or name in (str(r["id"]), r["number"])
    ]

    def text(console) -> None:
        if not items:
            console.print("No invoices recorded.")
            return
        table(console, list(keep), [[i[c] for c in keep] for i in items])

    app.emit(items, text)


def _emit_items(app, kind: str, items: list[dict[str, Any]]) -> None:
    from penguinctl.cli.render import cell_text, table

    def text(console) -> None:
        from rich.markup import escape

        if not items:
            console.print(f"No {kind} recorded.")
            return
        cols = list(items[0])
        table(console, cols, [[escape(cell_text(i.get(c))) for c in cols] for i in items])

    app.emit(items, text)


@output_formats(*ROWS)
def get(
    ctx: typer.Context,
    kind: Annotated[
        str,
        typer.Argument(metavar="KIND", help=KIND_HELP, autocompletion=complete_kind),
    ],
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="NAME",
            help="Only this one (for backups: the server; for invoices: id or number).",
        ),
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", "-t", metavar="TENANT", help="Only this tenant's."),
    ] = None,
) -> None:
    """List recorded resources of one kind (reads the state store; creates nothing)."""
    from penguinctl.cli.render import cell_text, table

    app = ctx.obj
    k = _kind(kind)
    from penguinctl.cli import client_mode

    api = client_mode.client(app)
    if api is not None:
        return _emit_items(app, kind, client_mode.get_items(api, k, name, tenant))
    if k == "backup":
        return _get_backups(app, name, tenant)
    if k == "campaign":
        from penguinctl.cli.commands_campaign_report import get_campaigns

        return get_campaigns(app, name, tenant)
    if k == "invoice":
        return _get_invoices(app, name, tenant)
    rows = _rows(app, k, name, tenant)
    items = [_summary(k, r) for r in rows]
    if k == "dkim" and (app.output != "text" or not app.out.is_terminal):
        for item, row in zip(items, rows, strict=True):  # whole keys unless a person reads them
            item["public_key"] = row.data.get("public_key")

    def text(console) -> None:
        from rich.markup import escape

        if not items:
            console.print(f"No {kind} recorded.")
            return
        cols = list(items[0])
        table(console, cols, [[escape(cell_text(i[c])) for c in cols] for i in items])

    app.emit(items, text)


def _describe_other(app, k: str, name: str) -> dict[str, Any] | None:
    """``describe`` for the kinds that are not resources: backups, campaigns, invoices."""
    if k == "backup":
        hits = [s for s in _snapshots(app, None, None) if s["snapshot_id"].startswith(name)]
        return hits[0] if len(hits) == 1 else None
    if k == "campaign":
        from penguinctl.cli.commands_campaign_report import campaign_summaries
        from penguinctl.state.db import session_scope

        with session_scope(app.read_db) as session:
            hits = [c for c in campaign_summaries(session) if c["name"] == name]
        return hits[0] if len(hits) == 1 else None
    from penguinctl.billing import invoices
    from penguinctl.billing.render import to_json
    from penguinctl.errors import NotFound

    try:
        with app.read_db.connect() as conn:
            return to_json(invoices.get_invoice(conn, name))
    except NotFound:
        return None


def describe(
    ctx: typer.Context,
    kind: Annotated[
        str,
        typer.Argument(metavar="KIND", help=KIND_HELP, autocompletion=complete_kind),
    ],
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME",
            help="Its name (backups: snapshot id or prefix; invoices: id or number).",
        ),
    ],
) -> None:
    """Everything recorded about one resource (and, for a domain, its keys and records)."""
    from penguinctl.cli.render import dump
    from penguinctl.errors import NotFound
    from penguinctl.state.db import session_scope

    app = ctx.obj
    k = _kind(kind)
    from penguinctl.cli import client_mode

    api = client_mode.client(app)
    if api is not None:
        found = client_mode.describe(api, k, name)
        return app.emit(found, lambda c: c.print(dump(found, "yaml")))
    if k in ("backup", "campaign", "invoice"):
        found = _describe_other(app, k, name)
        if found is None:
            raise NotFound(f"{k} {name!r} is not recorded", hint=f"see `penguinctl get {k}s`")
        return app.emit(found, lambda c: c.print(dump(found, "yaml")))
    from penguinctl.services.resources import describe as describe_resource

    with session_scope(app.read_db) as session:
        doc = describe_resource(session, k, name)
    app.emit(doc, lambda c: c.print(dump(doc, "yaml")))
