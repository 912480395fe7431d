"""`state lock-status | unlock ID | history | audit`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from penguinctl.cli.conventions import ROWS, examples, output_formats

state_app = typer.Typer(
    help="Locks, apply history and the audit log.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl state history -n 5",
        "penguinctl state audit -t acme -r domain/acme-mail.example",
        "penguinctl state lock-status",
        "penguinctl state unlock 3f2a9c",
    ),
)


def register(app: typer.Typer) -> None:
    app.add_typer(state_app, name="state")


def _iso(ts) -> str | None:
    return ts.isoformat(timespec="seconds") if ts else None


@state_app.command("lock-status")
@output_formats(*ROWS)
def lock_status(ctx: typer.Context) -> None:
    """Show held locks with holder, host, pid and start time."""
    from penguinctl.cli.render import table
    from penguinctl.state.db import session_scope
    from penguinctl.state.lock import lock_status as _status

    app = ctx.obj
    with session_scope(app.read_db) as session:
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
def unlock(
    ctx: typer.Context,
    lock_id: Annotated[
        str, typer.Argument(metavar="ID", help="Lock id, as `state lock-status` shows it.")
    ],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Unlock even if the holder is alive (PostgreSQL: terminate its session); "
            "asks unless --yes.",
        ),
    ] = False,
) -> None:
    """Remove a lock whose holder is gone.

    A holder still running on this host (pid and start time match) is refused, and so, on
    PostgreSQL, is a lock a live session holds: --force removes it anyway (terminating that
    session). A lock taken on another host cannot be checked from here: you are asked.
    """
    from penguinctl.state.unlock import inspect
    from penguinctl.state.unlock import unlock as _unlock

    app = ctx.obj
    info = inspect(app.db, lock_id)
    if info is not None:
        if info.live and not force:
            raise info.refusal()
        caution = info.caution()
        if caution is not None and not app.yes:
            _confirm(app, caution)
    result = _unlock(app.db, lock_id, actor=app.actor(), force=force)

    def text(console) -> None:
        state = {
            "gone": "is gone",
            "alive": "still runs",
            "unknown": "ran on another host (not checked)",
        }[result.holder]
        console.print(f"Lock {lock_id} removed: its holder {result.who} {state}.", markup=False)
        if result.terminated:
            pids = ", ".join(map(str, result.terminated))
            console.print(f"PostgreSQL session {pids} terminated.")
        if result.holder != "gone":
            console.print(f"Make sure pid {result.pid} on {result.host} is stopped.")

    app.emit(result.to_json(), text)


def _confirm(app, caution: str) -> None:
    import sys

    from penguinctl.errors import UsageError

    if app.machine or not sys.stdin.isatty():
        raise UsageError(f"not unlocked: {caution}", hint="confirm with --yes")
    if not typer.confirm(f"Careful: {caution}. Unlock anyway?", default=False, err=True):
        raise UsageError("not confirmed; the lock was left in place")


@state_app.command("history")
@output_formats(*ROWS)
def history(
    ctx: typer.Context,
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", metavar="TENANT", help="Only this tenant's.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", help="At most N, newest first.")
    ] = 20,
) -> None:
    """Apply and destroy runs, newest first."""
    from penguinctl.cli.render import table
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    app = ctx.obj
    with session_scope(app.read_db) as session:
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
@output_formats(*ROWS)
def audit_log(
    ctx: typer.Context,
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", metavar="TENANT", help="Only this tenant's.")
    ] = None,
    resource: Annotated[
        str | None,
        typer.Option(
            "--resource",
            "-r",
            metavar="ADDRESS",
            help="Only this resource (e.g. domain/acme-mail.example).",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", help="At most N, newest first.")
    ] = 200,
) -> None:
    """The audit log: who did what, when, to which resource, with what result."""
    from penguinctl.cli.render import table
    from penguinctl.state import audit
    from penguinctl.state.db import session_scope

    app = ctx.obj
    with session_scope(app.read_db) as session:
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


@state_app.command("specs")
def specs(
    ctx: typer.Context,
    tenant: Annotated[
        str | None,
        typer.Argument(metavar="TENANT", help="Only this tenant's documents (and the platform's)."),
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            metavar="DIR",
            help="Write the documents back as YAML files, one per tenant (TENANT.yaml; the "
            "platform's as platform.yaml).",
        ),
    ] = None,
) -> None:
    """The spec documents recorded by the last apply of each tenant (what `serve`'s jobs run
    from): kind, name, sha256 of the normalised document, the apply run. Secret fields hold
    references only.

    Examples:
      penguinctl state specs
      penguinctl state specs acme -o yaml
      penguinctl state specs --export ./recorded && penguinctl plan -f ./recorded
    """
    from penguinctl.control import specs as recorded
    from penguinctl.errors import NotFound

    app = ctx.obj
    rows = recorded.listing(app.read_db, tenant)
    if tenant is not None and not any(r.tenant == tenant for r in rows):
        raise NotFound(
            f"no spec recorded for tenant {tenant}",
            hint="`penguinctl state specs` lists what is recorded; apply the tenant's spec first",
        )
    written: list[str] = []
    if export is not None:
        export.mkdir(parents=True, exist_ok=True)
        by_tenant: dict[str, list] = {}
        for r in rows:
            by_tenant.setdefault(r.tenant, []).append(r)
        for name, recs in sorted(by_tenant.items()):
            path = export / f"{name or 'platform'}.yaml"
            header = (
                f"# Recorded by penguinctl for {'tenant ' + name if name else 'the platform'}"
                " (`penguinctl state specs --export`).\n"
            )
            path.write_text(recorded.as_yaml(recs, header=header), encoding="utf-8")
            written.append(str(path))
    data = {
        "documents": [r.to_json(with_document=app.output != "text") for r in rows],
        "written": written,
    }

    def text(console) -> None:
        from penguinctl.cli.render import table

        if not rows:
            console.print("No spec recorded yet (apply one).")
        else:
            table(
                console,
                ["tenant", "kind", "name", "sha256", "run", "recorded"],
                [
                    [
                        r.tenant or "(platform)",
                        r.kind,
                        r.name,
                        r.sha256[:12],
                        str(r.run_id or "-"),
                        _iso(r.recorded_at) or "",
                    ]
                    for r in rows
                ],
            )
        for path in written:
            console.print(f"wrote {path}")

    app.emit(data, text)
