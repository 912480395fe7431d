"""`state lock-status | unlock ID | history | audit`."""

from __future__ import annotations

from typing import Annotated

import typer

state_app = typer.Typer(
    help="Locks, apply history and the audit log.", no_args_is_help=True, rich_markup_mode=None
)


def register(app: typer.Typer) -> None:
    app.add_typer(state_app, name="state")


def _iso(ts) -> str | None:
    return ts.isoformat(timespec="seconds") if ts else None


@state_app.command("lock-status")
def lock_status(ctx: typer.Context) -> None:
    """Show held locks with holder, host, pid and start time."""
    from penguinctl.cli.render import table
    from penguinctl.state.db import session_scope
    from penguinctl.state.lock import lock_status as _status

    app = ctx.obj
    with session_scope(app.db) as session:
        locks = [
            {
                "id": r.lock_id,
                "tenant": r.tenant or "(shared)",
                "operation": r.operation,
                "holder": r.actor,
                "host": r.host,
                "pid": r.pid,
                "since": _iso(r.acquired_at),
            }
            for r in _status(session)
        ]

    def text(console) -> None:
        if not locks:
            console.print("No locks held.")
        else:
            table(console, list(locks[0]), [list(x.values()) for x in locks])

    app.emit(locks, text)


@state_app.command("unlock")
def unlock(ctx: typer.Context, lock_id: Annotated[str, typer.Argument(help="Lock id.")]) -> None:
    """Remove a lock left by a process that is gone."""
    from penguinctl.errors import NotFound
    from penguinctl.state.db import session_scope
    from penguinctl.state.lock import unlock as _unlock

    app = ctx.obj
    with session_scope(app.db) as session:
        removed = _unlock(session, lock_id, actor=app.actor())
    if not removed:
        raise NotFound(f"no lock with id {lock_id}", hint="see `penguinctl state lock-status`")
    app.emit({"unlocked": lock_id}, lambda c: c.print(f"Lock {lock_id} removed."))


@state_app.command("history")
def history(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 20,
) -> None:
    """Apply and destroy runs, newest first."""
    from penguinctl.cli.render import table
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    app = ctx.obj
    with session_scope(app.db) as session:
        runs = [
            {
                "id": r.id,
                "operation": r.operation,
                "status": r.status,
                "actor": r.actor,
                "tenants": ",".join(r.tenants or []),
                "started": _iso(r.started_at),
                "finished": _iso(r.finished_at),
                "applied": (r.summary or {}).get("applied"),
            }
            for r in repo.list_runs(session, tenant=tenant, limit=limit)
        ]

    def text(console) -> None:
        if not runs:
            console.print("No runs recorded.")
        else:
            table(console, list(runs[0]), [list(x.values()) for x in runs])

    app.emit(runs, text)


@state_app.command("audit")
def audit_log(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None,
    resource: Annotated[str | None, typer.Option("--resource", "-r")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 200,
) -> None:
    """The audit log: who did what, when, to which resource, with what result."""
    from penguinctl.cli.render import table
    from penguinctl.state import audit
    from penguinctl.state.db import session_scope

    app = ctx.obj
    with session_scope(app.db) as session:
        events = [
            {
                "ts": _iso(e.ts),
                "actor": e.actor,
                "tenant": e.tenant,
                "action": e.action,
                "resource": e.resource,
                "result": e.result,
                "run": e.run_id,
            }
            for e in audit.list_events(session, tenant=tenant, resource=resource, limit=limit)
        ]

    def text(console) -> None:
        if not events:
            console.print("No audit events.")
        else:
            table(console, list(events[0]), [list(x.values()) for x in events])

    app.emit(events, text)
