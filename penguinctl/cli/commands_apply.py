"""`init`, `validate`, `plan`, `apply`, `destroy`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from penguinctl.plan.planfile import PlanFile

Files = Annotated[
    list[Path],
    typer.Option("--file", "-f", metavar="FILE", help="Spec file or directory (repeatable)."),
]
Target = Annotated[
    list[str] | None,
    typer.Option(
        "--target", metavar="KIND/NAME", help="Limit to KIND/NAME and what it needs (repeatable)."
    ),
]
Force = Annotated[bool, typer.Option("--force", help="Allow unsafe changes (deletions).")]
LockTimeout = Annotated[
    float,
    typer.Option(
        "--lock-timeout", metavar="SECONDS", help="Seconds to wait for a held lock (0: fail fast)."
    ),
]
Parallel = Annotated[
    int, typer.Option("--parallel", metavar="N", min=1, max=64, help="Concurrent batches.")
]
Detail = Annotated[
    bool,
    typer.Option(
        "--detail", help="Print every change even in a plan of thousands (default: a summary)."
    ),
]
NoRefresh = Annotated[
    bool, typer.Option("--no-refresh", help="Trust the state store; do not read live state.")
]


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("validate")(validate)
    app.command("plan")(plan)
    app.command("apply")(apply)
    app.command("destroy")(destroy)


def init(
    ctx: typer.Context,
    project: Annotated[
        bool,
        typer.Option(
            "--project",
            help="Keep config and state in ./.penguinctl (a project directory, found from here "
            "and every subdirectory, as git finds .git) instead of the user-wide XDG directories.",
        ),
    ] = False,
) -> None:
    """Create the config and data directories, the state store and the keystore key. Idempotent.

    Also takes group and other permissions away from what older versions created readable by
    others: the SQLite state store, the keystore, state backups and debug logs.
    """
    from penguinctl.private_files import make_dirs
    from penguinctl.providers.secrets.keystore import ensure_key_file

    app = ctx.obj
    if project:
        _make_project_dir(app)
    s = app.settings
    for d in (s.config_dir, s.data_dir):
        make_dirs(d)
    tightened = _tighten_private_files(s)  # first: SQLite's side files take the db's mode
    _ = app.db  # runs migrations
    created_key = False
    if s.master_key is None:
        created_key = ensure_key_file(s.master_key_file)
    result = {
        "config_dir": str(s.config_dir),
        "data_dir": str(s.data_dir),
        "state": _mask_url(s.state_url),
        "keystore_key": "PENGUINCTL_MASTER_KEY" if s.master_key else str(s.master_key_file),
        "keystore_key_created": created_key,
        "modes_tightened": tightened,
        "recovery_key": _recovery_key(app),
    }

    def text(console) -> None:
        console.print(f"config dir   {result['config_dir']}")
        console.print(f"data dir     {result['data_dir']}")
        console.print(f"state store  {result['state']} (migrated)")
        note = " (created)" if created_key else ""
        console.print(f"keystore key {result['keystore_key']}{note}")
        if tightened:
            console.print(f"made {tightened} file(s) and folder(s) private (0600/0700)")
        if result["recovery_key"]:
            console.print(f"recovery key {result['recovery_key']}")
        else:
            console.print(
                "recovery key none yet: without it a lost machine loses every secret. Create it\n"
                "             with `penguinctl recovery-key create --out recovery-key.txt` and "
                "keep that file\n             offline (or --passphrase); `backup state` then "
                "also seals the secrets\n             to it, and `penguinctl recover` restores "
                "both on a new machine."
            )

    app.emit(result, text)


def _recovery_key(app) -> str | None:
    """The recovery key's public half, or None (none created, or the backend unreachable)."""
    from penguinctl.recovery.keys import load

    try:
        key = load(app.secrets())
    except Exception:  # init must work before Vault is reachable
        return None
    return f"{key.recipient} ({key.mode})" if key else None


def _tighten_private_files(s) -> int:
    """0600 files and 0700 folders for the private things in the data dir."""
    from sqlalchemy.engine import make_url

    from penguinctl.private_files import (
        PRIVATE_FILE,
        sqlite_files,
        tighten,
        tighten_tree,
    )

    changed = 0
    url = make_url(s.state_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        for path in sqlite_files(Path(url.database).expanduser()):
            changed += tighten(path, PRIVATE_FILE)
    for tree in (s.keystore_dir, s.data_dir / "backups", s.log_dir):
        changed += tighten_tree(tree)
    return changed


def _make_project_dir(app) -> None:
    from penguinctl.errors import UsageError
    from penguinctl.settings import PROJECT_DIR_NAME

    if app.env.get("PENGUINCTL_HOME"):
        raise UsageError(
            "--project: PENGUINCTL_HOME is set, and it wins over a project directory",
            hint="unset PENGUINCTL_HOME, or run `penguinctl init` without --project",
        )
    (Path.cwd() / PROJECT_DIR_NAME).mkdir(mode=0o700, exist_ok=True)
    app.reload_settings()


def _mask_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _load(files: list[Path]):
    from penguinctl.services.specs import load_files

    return load_files(files)


def validate(
    ctx: typer.Context,
    files: Files = [],  # noqa: B006 - typer needs a literal default
    schema: Annotated[bool, typer.Option("--schema", help="Print the JSON Schema.")] = False,
) -> None:
    """Load and check specs; every error with file:line:col (exit 3 when invalid). With a
    state store, also that no tenant names what another tenant owns."""
    app = ctx.obj
    if schema:
        from penguinctl.cli.render import dump
        from penguinctl.spec import json_schema

        print(dump(json_schema(), "yaml" if app.output == "yaml" else "json"))
        return
    from penguinctl.services.specs import counts as count

    specs = _load(files)
    _check_ownership(app, specs)
    counts = count(specs)
    app.emit(
        {"valid": True, "files": [str(f) for f in specs.files], "counts": counts},
        lambda c: c.print(
            "[green]valid[/]: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
        ),
    )


def _check_ownership(app, specs) -> None:
    """Refuse names another tenant owns (``OwnershipConflict``, exit 3), when there is a state
    store to know owners from (validate never creates one)."""
    from penguinctl.errors import NoState
    from penguinctl.plan.confine import check_ownership, recorded_owners

    try:
        db = app.read_db
    except NoState:
        return
    check_ownership(specs, recorded_owners(db), app.settings.zones_dir)


def _engine(app, specs):
    from penguinctl.services import context
    from penguinctl.services import specs as service

    return service.engine(context.from_cli(app), specs)


def plan(
    ctx: typer.Context,
    files: Files = [],  # noqa: B006
    out: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", help="Save the plan to FILE.")
    ] = None,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 2 when there are changes.")
    ] = False,
    target: Target = None,
    destroy: Annotated[bool, typer.Option("--destroy", help="Plan a destroy.")] = False,
    no_refresh: NoRefresh = False,
    detail: Detail = False,
) -> int:
    """Diff desired against recorded and live state and print the plan."""
    from penguinctl.cli import client_mode
    from penguinctl.cli.render import render_plan
    from penguinctl.errors import PLAN_CHANGES_PENDING
    from penguinctl.plan import planfile

    app = ctx.obj
    api = client_mode.client(app)
    if api is not None:
        return client_mode.plan(
            app, api, files, targets=target or [], destroy=destroy, refresh=not no_refresh,
            out=out, detailed_exitcode=detailed_exitcode,
        )  # fmt: skip
    specs = _load(files)
    engine = _engine(app, specs)
    the_plan = engine.plan(destroy=destroy, targets=target or (), refresh=not no_refresh)
    if out is not None:
        planfile.save(out, the_plan, spec_paths=[str(p) for p in files])
    unsafe = the_plan.unsafe_reasons()

    def text(console) -> None:
        render_plan(console, the_plan, detail=detail)
        for reason in unsafe:
            console.print(f"[red]needs --force:[/] {reason}")
        if out is not None:
            console.print(f"Plan saved to {out}; apply it with `penguinctl apply --plan {out}`.")

    app.emit({**the_plan.to_json(), "unsafe": unsafe}, text)
    if detailed_exitcode and not the_plan.empty:
        return PLAN_CHANGES_PENDING
    return 0


def _run(
    app,
    files: list[Path],
    *,
    destroy: bool,
    plan_file: Path | None,
    targets: list[str],
    force: bool,
    lock_timeout: float,
    parallel: int,
    refresh: bool,
    detail: bool = False,
) -> int:
    from penguinctl.cli.render import render_apply
    from penguinctl.engine import raise_for_report
    from penguinctl.errors import UsageError
    from penguinctl.plan import planfile

    saved = None
    if plan_file is not None:
        saved = planfile.load(plan_file)
        files = files or [Path(p) for p in saved.specs]
        if saved.operation != ("destroy" if destroy else "apply"):
            raise UsageError(f"plan file {plan_file} is a {saved.operation} plan")
    specs = _load(files)
    the_plan, report = plan_and_apply(
        app,
        specs,
        destroy=destroy,
        targets=targets,
        force=force,
        lock_timeout=lock_timeout,
        parallel=parallel,
        refresh=refresh,
        detail=detail,
        saved=saved,
        plan_file=plan_file,
    )
    if report is None:
        app.emit(
            {"changes": [], "status": "no-op", "checksum": the_plan.checksum()},
            lambda c: c.print("[green]No changes.[/] Infrastructure matches the spec."),
        )
        return 0
    app.emit(report.to_json(), lambda c: render_apply(c, report))
    raise_for_report(report)
    return 0


def plan_and_apply(
    app,
    specs,
    *,
    destroy: bool = False,
    targets: list[str] | None = None,
    force: bool = False,
    lock_timeout: float = 0.0,
    parallel: int = 4,
    refresh: bool = True,
    saved: PlanFile | None = None,
    plan_file: Path | None = None,
    detail: bool = False,
):
    """Plan loaded ``specs`` and apply the plan, holding the tenants' lock throughout.

    Returns ``(plan, report)``; the report is None when the plan is empty (nothing applied).
    Prints the plan in text mode; the caller prints the outcome and calls ``raise_for_report``.
    Raises ``UnsafePlan`` (without ``force``), ``ChecksumMismatch`` (``saved`` plan no longer
    matches), ``LockHeld`` and ``UsageError`` (not confirmed) exactly as ``apply`` does.
    """
    from penguinctl.cli.render import render_plan
    from penguinctl.services import context
    from penguinctl.services import specs as service

    verb = "destroy" if destroy else "apply"

    def on_plan(the_plan) -> None:
        if not app.machine:
            render_plan(app.out, the_plan, detail=detail)

    def confirm(the_plan) -> bool:
        # A reviewed, saved plan is its own confirmation (as with Terraform).
        return app.yes or saved is not None or _confirm(app, verb)

    return service.apply(
        context.from_cli(app),
        specs,
        destroy=destroy,
        targets=targets or [],
        force=force,
        lock_timeout=lock_timeout,
        parallel=parallel,
        refresh=refresh,
        checksum=saved.checksum if saved is not None else None,
        checksum_source=f"plan file {plan_file}",
        checksum_hint="run `penguinctl plan --out FILE` again and review it",
        on_wait=lambda held: app.err.print(
            f"waiting up to {lock_timeout:g}s: {held.message}", markup=False, highlight=False
        ),
        on_plan=on_plan,
        confirm=confirm,
        progress=lambda eng, the_plan, n: _apply_with_progress(app, eng, the_plan, n),
    )


def _confirm(app, verb: str) -> bool:
    import sys

    if not sys.stdin.isatty():
        from penguinctl.errors import UsageError

        raise UsageError(f"{verb} needs confirmation but stdin is not a terminal", hint="add --yes")
    return typer.confirm(f"Do you want to {verb} these changes?", default=False)


def _apply_with_progress(app, engine, the_plan, parallel: int):
    total = len(the_plan.changes)
    if app.machine or not app.err.is_terminal:
        return engine.apply(the_plan, parallel=parallel)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=app.err,
        transient=True,
    ) as bar:
        task = bar.add_task("applying", total=total)
        return engine.apply(the_plan, parallel=parallel, progress=lambda n: bar.advance(task, n))


def apply(
    ctx: typer.Context,
    files: Files = [],  # noqa: B006
    plan_file: Annotated[
        Path | None,
        typer.Option("--plan", metavar="FILE", help="Apply this saved plan (checksum verified)."),
    ] = None,
    target: Target = None,
    force: Force = False,
    lock_timeout: LockTimeout = 0.0,
    parallel: Parallel = 4,
    no_refresh: NoRefresh = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Change nothing: show what would change, on servers too."),
    ] = False,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="With --check: exit 2 on changes.")
    ] = False,
    detail: Detail = False,
) -> int:
    """Apply the spec: create, update and delete what differs. Asks unless --yes."""
    from penguinctl.cli import client_mode

    api = client_mode.client(ctx.obj)
    if api is not None:
        if check or plan_file is not None:
            raise client_mode._local_only("apply --check / --plan")
        return client_mode.apply(
            ctx.obj, api, files, targets=target or [], destroy=False, force=force,
            parallel=parallel, refresh=not no_refresh,
        )  # fmt: skip
    if check:
        from penguinctl.cli.check_mode import run_check

        engine = _engine(ctx.obj, _load(files))
        return run_check(
            ctx.obj,
            engine,
            parallel=parallel,
            detailed_exitcode=detailed_exitcode,
            detail=detail,
        )
    return _run(
        ctx.obj,
        files,
        destroy=False,
        plan_file=plan_file,
        targets=target or [],
        force=force,
        lock_timeout=lock_timeout,
        parallel=parallel,
        refresh=not no_refresh,
        detail=detail,
    )


def destroy(
    ctx: typer.Context,
    files: Files = [],  # noqa: B006
    target: Target = None,
    force: Force = False,
    lock_timeout: LockTimeout = 0.0,
    parallel: Parallel = 4,
    detail: Detail = False,
) -> int:
    """Remove everything the spec owns, in reverse order (deleting domains needs --force)."""
    return _run(
        ctx.obj,
        files,
        destroy=True,
        plan_file=None,
        targets=target or [],
        force=force,
        lock_timeout=lock_timeout,
        parallel=parallel,
        refresh=True,
        detail=detail,
    )
