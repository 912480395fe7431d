"""`dkim status` and `dkim rotate DOMAIN... / --all-due`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from penguinctl import clock
from penguinctl.cli.conventions import examples

dkim_app = typer.Typer(
    help="DKIM key ages, phases and rotation.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl dkim status",
        "penguinctl dkim rotate --all-due        # from cron",
        "penguinctl dkim rotate acme-mail.example",
    ),
)


def register(app: typer.Typer) -> None:
    app.add_typer(dkim_app, name="dkim")


def _age(seconds: float) -> str:
    seconds = int(max(0, seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _status_json(dk, now, secrets=None) -> dict:
    from penguinctl.services.dkim import status_json

    return status_json(dk, now, secrets)


@dkim_app.command("status")
def status(
    ctx: typer.Context,
    domains: Annotated[
        list[str] | None, typer.Argument(metavar="DOMAIN", help="Domains (default: all).")
    ] = None,
) -> None:
    """Key age and phase of every DKIM key, and each domain's next step and when it is due."""
    from datetime import datetime

    from rich.markup import escape

    from penguinctl.cli.render import table
    from penguinctl.errors import PenguinError
    from penguinctl.rotation import load

    app = ctx.obj
    names = [d.lower().rstrip(".") for d in domains] if domains else None
    now = clock.now()
    try:
        secrets = app.secrets()
    except PenguinError as exc:  # the phases still show; each key says "unknown"
        app.err.print(f"warning: secrets backend not read: {exc.message}", markup=False)
        secrets = None
    data = [_status_json(dk, now, secrets) for dk in load(app.read_db, names)]

    def text(console) -> None:
        rows = []
        for d in data:
            nxt = d["next"][0] if d["next"] else None
            for i, k in enumerate(d["keys"]):
                when = ""
                if nxt and i == 0:
                    due = nxt["due_in_seconds"]
                    step = f"{nxt['action']} {nxt['selector'] or ''}".strip()
                    when = f"{step} {'now' if due == 0 else 'in ' + _age(due)}"
                rows.append(
                    [
                        # piped output repeats the domain: every row stands alone
                        escape(d["domain"]) if i == 0 or not console.is_terminal else "",
                        k["selector"],
                        k["phase"] if k["key"] in ("ok", "-") else f"{k['phase']}, key {k['key']}",
                        _age(k["age_seconds"]),
                        _age((now - datetime.fromisoformat(k["phase_since"])).total_seconds()),
                        when,
                    ]
                )
        table(console, ["domain", "selector", "phase", "age", "in phase", "next step"], rows)

    app.emit({"domains": data}, text)


@dkim_app.command("rotate")
def rotate(
    ctx: typer.Context,
    domains: Annotated[
        list[str] | None,
        typer.Argument(metavar="DOMAIN", help="Start (or continue) rotating these domains."),
    ] = None,
    all_due: Annotated[
        bool,
        typer.Option(
            "--all-due", help="Every domain with a due step; starts rotations of old keys."
        ),
    ] = False,
    nameserver: Annotated[
        list[str] | None,
        typer.Option(
            "--nameserver",
            metavar="HOST[:PORT]",
            help="Check publication here (HOST[:PORT], repeatable).",
        ),
    ] = None,
    resolver: Annotated[
        list[str] | None,
        typer.Option(
            "--resolver", metavar="HOST[:PORT]", help="Recursive resolver for finding name servers."
        ),
    ] = None,
    lock_timeout: Annotated[
        float,
        typer.Option("--lock-timeout", metavar="SECONDS", help="Seconds to wait for a held lock."),
    ] = 0.0,
) -> int:
    """Start or advance DKIM rotations; does every step that is due and stops where it must wait.

    Safe to run from cron: a step runs once, a killed run resumes where it stopped."""
    from penguinctl.errors import PartialApply, ProviderError, UsageError
    from penguinctl.rotation import load
    from penguinctl.rotation_run import rotate_domains

    app = ctx.obj
    if bool(domains) == all_due:
        raise UsageError("name the domains to rotate, or pass --all-due (not both)")
    names = [d.lower().rstrip(".") for d in domains] if domains else None
    found = load(app.db, names)
    with _progress(app, len(found)) as advance:
        done = rotate_domains(
            app,
            names,
            start=not all_due,
            start_if_due=all_due,
            nameservers=nameserver or [],
            resolvers=resolver or app.settings.dns_resolvers,
            lock_timeout=lock_timeout,
            actor=app.actor(),
            clock=app.clock,
            progress=advance,
            loaded=found,
        )
    outcomes = done.steps

    def text(console) -> None:
        from rich.markup import escape

        if not outcomes:
            console.print("Nothing is due.")
        style = {"done": "green", "waiting": "yellow", "failed": "red"}
        for o in outcomes:
            console.print(
                f"[{style[o.result]}]{o.result:7}[/] {escape(o.domain)} {o.action} "
                f"{o.selector or ''}: {escape(o.detail)}"
            )

    app.emit({"run_id": done.run_id, "steps": [o.to_json() for o in outcomes]}, text)
    failed = [o for o in outcomes if o.result == "failed"]
    if failed:
        first = failed[0]
        msg = (
            f"{len(failed)} rotation step(s) failed; first: {first.domain} {first.action}: "
            f"{first.detail}"
        )
        hint = "fix the cause and run `penguinctl dkim rotate` again; it resumes"
        if any(o.result == "done" for o in outcomes):
            raise PartialApply(msg, hint=hint)
        raise ProviderError(msg, hint=hint)
    return 0


@contextmanager
def _progress(app, total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr for long runs in a terminal; a no-op otherwise."""
    if app.machine or total < 20 or not app.err.is_terminal:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "rotating", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=app.err,
        transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("rotate", total=total)
        yield lambda: bar.advance(task)
