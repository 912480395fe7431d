"""`check history`: the stored check results (``check_results``), newest first."""

from __future__ import annotations

from typing import Annotated

import typer

from penguinctl.cli.commands_events import TenantOpt, scope

_STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "error": "magenta"}


def history(
    ctx: typer.Context,
    target: Annotated[
        str | None, typer.Argument(metavar="[TARGET]", help="Only this server or domain.")
    ] = None,
    tenant: TenantOpt = None,
    check: Annotated[
        str | None,
        typer.Option("--check", metavar="CHECK", help="Only this check (smtp:25, dnsbl:*...)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="WHEN", help="A duration back (24h, 7d) or ISO time."),
    ] = None,
    problems: Annotated[
        bool, typer.Option("--problems", help="Only results that are not ok.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="At most N.")] = 200,
) -> None:
    """Stored check results, newest first (what each `check` run found, per target)."""
    from penguinctl.events.query import parse_since
    from penguinctl.health.history import recent

    app = ctx.obj
    rows = recent(
        app.db,
        target=target,
        tenant=scope(tenant),
        check=check,
        since=parse_since(since, app.now()),
        problems=problems,
        limit=max(1, min(limit, 10_000)),
    )

    def text(console) -> None:
        from rich.markup import escape

        from penguinctl.cli.render import table

        if not rows:
            console.print("No stored check results (run `penguinctl check`).")
            return
        table(
            console,
            ["time (UTC)", "target", "check", "subject", "status", "detail", "run"],
            [
                [r["checked_at"][:19], escape(r["target"]), escape(r["check"]),
                 escape(r["subject"]), f"[{_STYLE.get(r['status'], 'white')}]{r['status']}[/]",
                 escape(r["detail"][:120]), r["run_id"]]
                for r in rows
            ],
        )  # fmt: skip

    app.emit(rows, text)
