"""`backup run / list / prune / verify / restore` (MailU servers, restic over SSH) and
`backup state / state-restore` (the state store itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from penguinctl.cli.conventions import ROWS, examples, output_formats

backup_app = typer.Typer(
    help="Server backups (restic over SSH) and state-store backups.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl backup run --all",
        "penguinctl backup list mx1",
        "penguinctl backup restore latest --server mx1",
        "penguinctl backup state --to state-copy.db",
    ),
)

Servers = Annotated[list[str] | None, typer.Argument(metavar="SERVER", help="Servers (or --all).")]
AllServers = Annotated[bool, typer.Option("--all", help="Every server reachable over SSH.")]
SpecFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--file",
        "-f",
        metavar="FILE",
        help="Spec files holding the servers' BackupPolicy (default: the recorded spec).",
    ),
]
Root = Annotated[
    str,
    typer.Option(
        "--mailu-root",
        metavar="DIR",
        envvar="PENGUINCTL_MAILU_ROOT",
        help="MailU root on the server.",
    ),
]
Parallel = Annotated[
    int, typer.Option("--parallel", metavar="N", min=1, max=100, help="Servers at once.")
]


def register(app: typer.Typer) -> None:
    app.add_typer(backup_app, name="backup")


def _jobs(app, names, all_servers: bool, files, root: str, **opts) -> list[Any]:
    from penguinctl.backup.plan import backup_jobs, require_choice

    require_choice(names, all_servers)
    return backup_jobs(app, names or None, files=files, root=root, **opts)


def _fan(app, jobs: list[Any], work, title: str, parallel: int):
    """Run ``work(job)`` for every job in parallel, with a progress bar on a terminal."""
    import sys

    from penguinctl.remote.fanout import fan_out

    show = not app.machine and sys.stderr.isatty() and len(jobs) > 0
    if not show:
        return fan_out(jobs, work, parallel=parallel, name=lambda j: j.target.name)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=app.err,
        transient=True,
    ) as progress:
        task = progress.add_task(title, total=len(jobs))
        return fan_out(
            jobs,
            work,
            parallel=parallel,
            name=lambda j: j.target.name,
            progress=lambda _r: progress.advance(task),
        )


def _finish(app, summary, columns: list[str], row, *, what: str, check: bool = False) -> int:
    """Print the per-server results; raise when any server failed."""
    from penguinctl.errors import CheckFailed, PartialApply, ProviderError

    results = []
    for r in summary.results:
        item = {"server": r.host, "status": "ok" if r.status in ("ok", "changed") else r.status}
        item.update(r.value or {})
        item["error"] = r.error
        results.append(item)

    def text(console) -> None:
        from rich.markup import escape

        from penguinctl.cli.render import table

        style = {"ok": "green", "failed": "red", "unreachable": "magenta"}
        rows = []
        for item in results:
            st = item["status"]
            cells = [escape(item["server"]), f"[{style.get(st, 'yellow')}]{st}[/]"]
            cells += [escape(str(row(item, c))) if st == "ok" else "" for c in columns]
            rows.append(cells)
        table(console, ["server", "status", *columns], rows, title=what)
        for item in results:
            if item["error"]:
                console.print(f"[red]{escape(item['server'])}[/]: {escape(item['error'])}")
            for w in item.get("warnings") or []:
                console.print(f"[yellow]{escape(item['server'])}[/]: {escape(w)}")

    app.emit({"ok": summary.ok, "servers": results}, text)
    if summary.ok:
        return 0
    bad = [r for r in summary.results if r.status not in ("ok", "changed")]
    msg = (
        f"{what}: {len(bad)} of {len(summary.results)} server(s) failed; "
        f"first: {bad[0].host}: {bad[0].error}"
    )
    if check:
        raise CheckFailed(msg)
    if len(bad) < len(summary.results):
        raise PartialApply(msg, hint="the others completed; fix the failed ones and re-run")
    raise ProviderError(msg)


def _size(n: Any) -> str:
    if not isinstance(n, int | float):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@backup_app.command("run")
def run(
    ctx: typer.Context,
    names: Servers = None,
    all_servers: AllServers = False,
    files: SpecFiles = None,
    root: Root = "/mailu",
    no_quiesce: Annotated[
        bool, typer.Option("--no-quiesce", help="Do not pause the MailU stack during the snapshot.")
    ] = False,
    samples: Annotated[
        int,
        typer.Option(
            "--samples",
            metavar="N",
            min=0,
            max=100,
            help="Files sampled per snapshot to check a restore (0: none).",
        ),
    ] = 8,
    parallel: Parallel = 5,
) -> int:
    """Back up the MailU root of each server with restic (repository initialised on first use,
    password generated into the secrets backend at backups/SERVER)."""
    app = ctx.obj
    jobs = _jobs(app, names, all_servers, files, root, quiesce=not no_quiesce, samples=samples)
    summary = _fan(app, jobs, lambda j: j.backup(), "backing up", parallel)

    def cell(item, col):
        return {
            "snapshot": (item.get("snapshot") or "")[:8],
            "new files": item.get("files_new"),
            "processed": _size(item.get("bytes_processed")),
            "added": _size(item.get("data_added")),
        }[col]

    return _finish(
        app, summary, ["snapshot", "new files", "processed", "added"], cell, what="backup"
    )


@backup_app.command("list")
@output_formats(*ROWS)
def list_(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(metavar="SERVER", help="Servers (default: all).")
    ] = None,
    files: SpecFiles = None,
    recorded: Annotated[
        bool, typer.Option("--recorded", help="Only what the state store recorded (no SSH).")
    ] = False,
    parallel: Parallel = 10,
) -> int:
    """Snapshots per server, as restic lists them (the recorded list is brought up to date)."""
    from penguinctl.backup import records

    app = ctx.obj
    if not recorded:
        jobs = _jobs(app, names, not names, files, "/mailu")
        summary = _fan(app, jobs, lambda j: j.snapshots(), "listing", parallel)
        failed = [r for r in summary.results if r.status not in ("ok", "changed")]
        for r in failed:
            if not app.machine:
                app.err.print(f"[red]{r.host}[/]: {r.error}")
    else:
        failed = []
    wanted = set(names or [])
    snaps = [s for s in records.list_snapshots(app.read_db) if not wanted or s["server"] in wanted]
    items = [
        {
            "server": s["server"],
            "snapshot": s["snapshot_id"],
            "short_id": s["short_id"],
            "time": s["taken_at"].isoformat(timespec="seconds"),
            "repository": s["repository"],
            "paths": s["paths"],
            "samples": len(s["samples"] or {}),
        }
        for s in snaps
    ]

    def text(console) -> None:
        from penguinctl.cli.render import table

        if not items:
            console.print("No snapshots.")
            return
        table(
            console,
            ["server", "snapshot", "time", "repository", "paths"],
            [
                [i["server"], i["short_id"], i["time"], i["repository"], len(i["paths"])]
                for i in items
            ],
        )

    app.emit(items, text)
    if failed:
        from penguinctl.errors import ProviderError

        raise ProviderError(
            f"could not list the snapshots of {', '.join(r.host for r in failed)}: "
            f"{failed[0].error}"
        )
    return 0


@backup_app.command("drills")
@output_formats(*ROWS)
def drills(ctx: typer.Context) -> int:
    """The newest restore drill per server and its last verified restore (no SSH)."""
    from penguinctl.backup import records

    app = ctx.obj
    items = records.last_drills(app.read_db)
    rows = []
    for it in items:
        last, ok = it["last"] or {}, it["verified"] or {}
        rows.append({
            "server": it["server"],
            "tenant": it["tenant"] or None,
            "last_drill": last.get("status"),
            "last_drill_at": last["at"].isoformat(timespec="seconds") if last.get("at") else None,
            "verified_at": ok["at"].isoformat(timespec="seconds") if ok.get("at") else None,
            "verified_snapshot": ok.get("snapshot"),
            "mail_files": ok.get("mail_files"),
        })  # fmt: skip

    def text(console) -> None:
        from penguinctl.cli.render import table

        if not rows:
            console.print("No restore drills yet (`penguinctl backup verify`).")
            return
        table(console, ["server", "last drill", "at", "last verified restore", "snapshot",
                        "mail files"],
              [[r["server"], r["last_drill"], r["last_drill_at"], r["verified_at"] or "never",
                (r["verified_snapshot"] or "")[:8], r["mail_files"]] for r in rows])  # fmt: skip

    app.emit(rows, text)
    return 0


@backup_app.command("prune")
def prune(
    ctx: typer.Context,
    names: Servers = None,
    all_servers: AllServers = False,
    files: SpecFiles = None,
    parallel: Parallel = 5,
) -> int:
    """Apply each server's retention (restic forget --keep-daily/-weekly/-monthly, then prune)."""
    app = ctx.obj
    jobs = _jobs(app, names, all_servers, files, "/mailu")
    summary = _fan(app, jobs, lambda j: j.prune(), "pruning", parallel)

    def cell(item, col):
        r = item.get("retention") or {}
        return {
            "retention": f"{r.get('daily')}d/{r.get('weekly')}w/{r.get('monthly')}m",
            "kept": item.get("kept"),
            "removed": item.get("removed"),
        }[col]

    return _finish(app, summary, ["retention", "kept", "removed"], cell, what="prune")


@backup_app.command("verify")
def verify(
    ctx: typer.Context,
    names: Servers = None,
    all_servers: AllServers = False,
    files: SpecFiles = None,
    subset: Annotated[
        str,
        typer.Option(
            "--read-data-subset",
            metavar="SUBSET",
            help="Share of pack data restic reads (n/t, x%).",
        ),
    ] = "10%",
    snapshot: Annotated[
        str | None,
        typer.Option("--snapshot", metavar="ID", help="Snapshot whose samples to restore."),
    ] = None,
    samples: Annotated[
        int,
        typer.Option(
            "--samples",
            metavar="N",
            min=1,
            max=100,
            help="Files sampled per snapshot to check a restore (0: none).",
        ),
    ] = 8,
    parallel: Parallel = 5,
) -> int:
    """restic check (reading a share of the data) plus a test restore of sample files,
    compared by sha256 with the hashes taken at backup time. Exit 5 when anything differs."""
    app = ctx.obj
    jobs = _jobs(app, names, all_servers, files, "/mailu", samples=samples)
    summary = _fan(
        app, jobs, lambda j: j.verify(subset=subset, snapshot=snapshot), "verifying", parallel
    )

    def cell(item, col):
        return {
            "snapshot": (item.get("snapshot") or "")[:8],
            "check": item.get("check"),
            "samples": f"{item.get('samples_ok')}/{item.get('samples')}",
        }[col]

    return _finish(app, summary, ["snapshot", "check", "samples"], cell, what="verify", check=True)


@backup_app.command("restore")
def restore(
    ctx: typer.Context,
    snapshot: Annotated[str, typer.Argument(help="Snapshot id (or a unique prefix, or latest).")],
    server: Annotated[
        str, typer.Option("--server", metavar="SERVER", help="The server whose snapshot it is.")
    ],
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="DIR",
            help="Restore under this directory on the server (default: in place).",
        ),
    ] = None,
    files: SpecFiles = None,
    root: Root = "/mailu",
) -> int:
    """Restore a snapshot on its server: under --to PATH, or in place (the MailU stack is
    stopped, the files are put back, the stack is started; asks unless --yes)."""
    from penguinctl.errors import UsageError

    app = ctx.obj
    (job,) = _jobs(app, [server], False, files, root)
    if (
        to is None
        and not app.yes
        and (
            app.machine
            or not typer.confirm(
                f"Restore {snapshot} over {root} on {server}? The stack is stopped meanwhile and "
                "current files are overwritten",
                default=False,
                err=True,
            )
        )
    ):
        raise UsageError("restore in place not confirmed", hint="pass --yes, or --to PATH")
    result = job.restore(snapshot, to)
    app.emit(
        result,
        lambda c: c.print(
            f"Restored snapshot {result['snapshot'][:8]} of {server} to {result['target']}."
        ),
    )
    return 0


@backup_app.command("state")
def state(
    ctx: typer.Context,
    to: Annotated[
        Path | None,
        typer.Option("--to", metavar="DIR", help="File to write (default: DATA_DIR/backups/...)."),
    ] = None,
    secrets_to: Annotated[
        Path | None,
        typer.Option(
            "--secrets-to",
            metavar="FILE",
            help="Secrets escrow to write (default: next to the state backup, .escrow).",
        ),
    ] = None,
    no_secrets: Annotated[
        bool, typer.Option("--no-secrets", help="Back up the state store only.")
    ] = False,
) -> int:
    """Back up the state store (SQLite through its online backup API, PostgreSQL with pg_dump)
    and the secrets backend, sealed to the recovery key (`penguinctl recovery-key create`).
    Copy both files off this machine: `penguinctl recover` needs them and the recovery key."""
    from penguinctl.backup.statestore import backup_state

    app = ctx.obj
    result = backup_state(app, to, escrow=not no_secrets, secrets_to=secrets_to)

    def text(c) -> None:
        c.print(
            f"State store backed up to {result['file']} ({_size(result['bytes'])}, "
            f"sha256 {result['sha256'][:12]})."
        )
        if result.get("warning"):
            c.print(f"[yellow]{result['warning']}[/]")
        sec = result.get("secrets") or {}
        if sec.get("file"):
            c.print(
                f"Secrets escrowed to {sec['file']} ({sec['count']} secrets, {sec['backend']}, "
                f"sealed to the recovery key)."
            )
        elif sec.get("warning"):
            c.print(f"[yellow]Secrets not escrowed: {sec['warning']}[/]")

    app.emit(result, text)
    return 0


@backup_app.command("state-restore")
def state_restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A file written by `backup state`.")],
) -> int:
    """Replace the state store's contents with a backup (asks unless --yes)."""
    from penguinctl.backup.statestore import restore_state
    from penguinctl.errors import UsageError

    app = ctx.obj
    if not app.yes and (
        app.machine
        or not typer.confirm(f"Replace the whole state store with {file}?", default=False, err=True)
    ):
        raise UsageError("state restore not confirmed", hint="pass --yes")
    result = restore_state(app, file)
    app.emit(result, lambda c: c.print(f"State store restored from {file}."))
    return 0
