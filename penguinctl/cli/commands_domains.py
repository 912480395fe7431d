"""`domains import FILE.csv`: bulk onboarding of client domains.

The CSV is parsed and checked by :mod:`penguinctl.spec.csvimport`; here the ``-f`` specs it is
checked against are loaded, the documents written (atomically; a different file is never replaced
without ``--overwrite``) and applied through the plan/apply path of ``apply``
(:func:`~penguinctl.cli.commands_apply.plan_and_apply`), followed by a per-domain report.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from penguinctl.cli.commands_apply import Detail, Files, Force, LockTimeout, Parallel
from penguinctl.cli.conventions import examples
from penguinctl.private_files import fsync_directory

if TYPE_CHECKING:
    from penguinctl.engine import ApplyReport
    from penguinctl.resources import ResourceKey
    from penguinctl.spec.csvimport import ImportedDomain

domains_app = typer.Typer(
    help="Bulk domain onboarding, and moving a domain to another tenant.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl domains import clients.csv -f specs/",
        "penguinctl domains import clients.csv -f specs/ --out-dir specs/clients --apply --yes",
        "penguinctl domains transfer client7.example --to client7 --yes",
    ),
)
FILE_MODE = 0o644


def register(app: typer.Typer) -> None:
    from penguinctl.cli.commands_domains_transfer import transfer

    domains_app.command("transfer")(transfer)
    app.add_typer(domains_app, name="domains")


@domains_app.command("import")
def import_domains(
    ctx: typer.Context,
    csv_file: Annotated[Path, typer.Argument(metavar="CSV", help="One row per domain.")],
    files: Files = [],  # noqa: B006 - typer needs a literal default
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir", metavar="DIR", help="Write DIR/<tenant>/<domain>.yaml, one per domain."
        ),
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Apply the domains together with the -f specs.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace files in --out-dir that differ.")
    ] = False,
    force: Force = False,
    lock_timeout: LockTimeout = 0.0,
    parallel: Parallel = 4,
    detail: Detail = False,
) -> int:
    """Bulk onboarding: turn FILE.csv (one row per sending domain) into Domain specs.

    Each row is checked with the rules of a YAML Domain document and against the specs given
    with -f (required): its tenant, server and dns must be defined there, its domain must not
    be. Every bad row is reported at once as FILE:LINE:COL (exit 3) and nothing is written.

    \b
    Columns (a header line; any order; names case-insensitive):
      domain, tenant, server, dns   required
      mailboxes        local:Display Name:daily_limit entries separated by ';'
                       (name and limit optional): john:John Smith:40;sara:Sara Lee
      dmarc_policy     none | quarantine | reject (default none)
      dmarc_rua        DMARC report addresses separated by ';'
      tracking_host    tracking CNAME name (default track)
      tracking_target  tracking CNAME target
    Limits: 20 MiB, 100,000 rows, 10,000 characters per cell; UTF-8 (a BOM is fine).

    \b
    Without --out-dir or --apply the CSV is only checked.
    --out-dir DIR writes DIR/<tenant>/<domain>.yaml; a file with different content is
    never replaced without --overwrite. Re-running the same import is a no-op.
    --apply plans and applies the domains together with the -f specs, like `apply` (asks
    unless --yes; exit 6 when some domains failed, each listed with its error).
    Without --out-dir the applied domains are in no spec file: a later `apply -f`
    without them plans their deletion, so prefer --out-dir.
    """
    app = ctx.obj
    domains = _validated(csv_file, files, out_dir)
    result: dict[str, Any] = {
        "file": str(csv_file),
        "valid": True,
        **_counts(domains),
        "out_dir": None if out_dir is None else str(out_dir),
        "written": [],
        "unchanged": [],
    }
    paths = [] if out_dir is None else _write(domains, out_dir, overwrite=overwrite, result=result)
    if not apply:
        app.emit(result, lambda console: _print_counts(console, result, applying=False))
        return 0
    if not app.machine:
        _print_counts(app.out, result, applying=True)
    options = {"force": force, "lock_timeout": lock_timeout, "parallel": parallel, "detail": detail}
    if out_dir is not None:
        return _apply(app, result, domains, [*files, *paths], options)
    with tempfile.TemporaryDirectory(prefix="penguinctl-import-") as tmp:
        paths = _write(domains, Path(tmp), overwrite=False, result={})
        return _apply(app, result, domains, [*files, *paths], options)


# -- checking ---------------------------------------------------------------------------------
def _validated(csv_file: Path, files: list[Path], out_dir: Path | None) -> list[ImportedDomain]:
    """The CSV's domains, checked against the ``-f`` specs; SpecError lists every issue."""
    from penguinctl.errors import SpecError, UsageError
    from penguinctl.spec import load_specs
    from penguinctl.spec.csvimport import check_against, read_csv

    if not files:
        raise UsageError(
            "no spec given",
            hint="pass -f FILE or -f DIRECTORY with the tenants, servers and DNS providers "
            "the CSV names",
        )
    result = read_csv(csv_file)
    issues = list(result.issues)
    try:
        specs = load_specs(files)
    except SpecError as exc:
        issues.extend(exc.issues)
    else:
        replaceable = set()
        for domain in result.domains if out_dir is not None else ():
            existing = specs.domains.get(domain.name)
            target = out_dir.joinpath(*domain.path.parts)
            if existing is not None and _same_path(Path(existing.location.file), target):
                replaceable.add(domain.name)  # a re-import into the same file
        issues.extend(check_against(result, specs, replaceable))
    if issues:
        raise SpecError(issues)
    return result.domains


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):
        return False


def _counts(domains: list[ImportedDomain]) -> dict[str, Any]:
    tenants: dict[str, dict[str, int]] = {}
    for domain in domains:
        counts = tenants.setdefault(domain.tenant, {"domains": 0, "mailboxes": 0})
        counts["domains"] += 1
        counts["mailboxes"] += len(domain.envelope.spec.mailboxes)
    return {
        "domains": len(domains),
        "mailboxes": sum(t["mailboxes"] for t in tenants.values()),
        "tenants": dict(sorted(tenants.items())),
    }


# -- writing ----------------------------------------------------------------------------------
def _write(
    domains: list[ImportedDomain], directory: Path, *, overwrite: bool, result: dict[str, Any]
) -> list[Path]:
    """Write each domain's file below ``directory``; all paths (written or already identical).

    Every file is checked before any is written: one that differs (without ``overwrite``) or
    cannot be read stops the import with nothing written.
    """
    from penguinctl.errors import UsageError

    paths: list[Path] = []
    todo: list[tuple[Path, bytes]] = []
    refused: list[str] = []
    for domain in domains:
        path = directory.joinpath(*domain.path.parts)
        data = domain.to_yaml().encode("utf-8")
        paths.append(path)
        try:
            current: bytes | None = path.read_bytes()
        except FileNotFoundError:
            current = None
        except OSError as exc:
            refused.append(f"{path} ({(exc.strerror or type(exc).__name__).lower()})")
            continue
        if current == data:
            result.setdefault("unchanged", []).append(str(path))
        elif current is None or overwrite:
            todo.append((path, data))
        else:
            refused.append(f"{path} (different content)")
    if refused:
        shown = ", ".join(refused[:10]) + (f" and {len(refused) - 10} more" if refused[10:] else "")
        raise UsageError(
            f"{len(refused)} file(s) in the way, nothing was written: {shown}",
            hint="review them; --overwrite replaces files whose content differs",
        )
    _write_all(todo)
    result.setdefault("written", []).extend(str(path) for path, _ in todo)
    return paths


def _write_all(todo: list[tuple[Path, bytes]]) -> None:
    """Write every file to a temporary file first (fsync'd), then rename them all into place."""
    from penguinctl.errors import PenguinError

    temps: list[tuple[str, Path]] = []
    current = None
    try:
        for current, data in todo:
            current.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{current.name}.", suffix=".tmp", dir=current.parent
            )
            temps.append((tmp, current))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                os.fchmod(handle.fileno(), FILE_MODE)
                handle.flush()
                os.fsync(handle.fileno())
        for tmp, current in temps:
            os.replace(tmp, current)
        for directory in {path.parent for _, path in temps}:
            fsync_directory(directory)
    except OSError as exc:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        reason = (exc.strerror or type(exc).__name__).lower()
        raise PenguinError(
            f"cannot write {current}: {reason}",
            hint="check that the directory is writable and has free space, then re-run",
        ) from None


# -- applying ---------------------------------------------------------------------------------
def _apply(
    app,
    result: dict[str, Any],
    domains: list[ImportedDomain],
    paths: list[Path],
    options: dict[str, Any],
) -> int:
    """Plan and apply ``paths`` (the -f specs and the imported files), then report per domain."""
    from penguinctl.cli.commands_apply import _load, plan_and_apply
    from penguinctl.engine import raise_for_report

    the_plan, report = plan_and_apply(app, _load(paths), **options)
    if report is None:
        result["apply"] = {"status": "no-op", "changes": [], "checksum": the_plan.checksum()}
    else:
        result["apply"] = report.to_json()
    result["results"] = domain_results(report, domains)
    app.emit(result, lambda console: _print_applied(console, result))
    if report is not None:
        raise_for_report(report)
    return 0


def _domain_of(key: ResourceKey) -> str | None:
    """The sending domain a resource belongs to (None for tenants, servers, providers)."""
    if key.kind == "domain":
        return key.name
    if key.kind == "mailbox":
        return key.name.rpartition("@")[2]
    if key.kind in ("dkim", "dnsrecord"):
        return key.name.partition("/")[0]
    return None


def domain_results(
    report: ApplyReport | None, domains: list[ImportedDomain]
) -> list[dict[str, Any]]:
    """Per domain: status (applied, unchanged, failed, skipped), change counts and the errors.

    Every imported domain is listed; other domains only when the apply changed them.
    """
    entries: dict[str, dict[str, Any]] = {}

    def entry(name: str, tenant: str, imported: bool) -> dict[str, Any]:
        new = {"domain": name, "tenant": tenant, "imported": imported, "status": "unchanged"}
        return entries.setdefault(name, {**new, "applied": 0, "failed": 0, "skipped": 0})

    for domain in domains:
        entry(domain.name, domain.tenant, True)["errors"] = []
    outcomes = [] if report is None else [
        *((change, "applied", None) for change in report.applied),
        *((change, "failed", error) for change, error in report.failed),
        *((change, "skipped", None) for change in report.skipped),
    ]  # fmt: skip
    for change, outcome, error in outcomes:
        name = _domain_of(change.key)
        if name is None:
            continue
        found = entry(name, change.key.tenant, False)
        found[outcome] += 1
        errors = found.setdefault("errors", [])
        if error is not None and error not in errors:
            errors.append(error)
    for found in entries.values():
        for status in ("failed", "skipped", "applied"):
            if found[status]:
                found["status"] = status
                break
    return sorted(entries.values(), key=lambda e: e["domain"])


# -- text output ------------------------------------------------------------------------------
def _print_counts(console, result: dict[str, Any], *, applying: bool) -> None:
    from rich.markup import escape

    console.print(
        f"[green]valid[/]: {result['domains']} domain(s), {result['mailboxes']} mailbox(es) "
        f"in {escape(result['file'])}"
    )
    out_dir = result["out_dir"]
    where = escape(out_dir or "<out-dir>")
    for tenant, counts in result["tenants"].items():
        files = f"{where}/{tenant}/<domain>.yaml"
        target = files if out_dir else "" if applying else f"would write {files}"
        console.print(
            f"  {tenant}: {counts['domains']} domain(s), {counts['mailboxes']} mailbox(es)"
            + (f" -> {target}" if target else "")
        )
    if out_dir is not None:
        written, unchanged = len(result["written"]), len(result["unchanged"])
        console.print(f"Wrote {written} file(s) under {where} ({unchanged} already up to date).")
    elif applying:
        console.print("No spec files written (no --out-dir); applying the domains as checked.")
    else:
        console.print("Nothing written: add --out-dir DIR to write the files, --apply to apply.")


def _print_applied(console, result: dict[str, Any]) -> None:
    from rich.markup import escape

    run = result["apply"].get("run_id")
    imported = [r for r in result["results"] if r["imported"]]
    counts = {s: sum(r["status"] == s for r in imported) for s in ("applied", "unchanged")}
    failed = [r for r in result["results"] if r["status"] in ("failed", "skipped")]
    color = "red" if failed else "green"
    console.print(
        f"[{color}]Imported domains:[/] {counts['applied']} applied, "
        f"{counts['unchanged']} unchanged, {len(failed)} failed"
        + (f" (run {run})." if run else ".")
    )
    for row in failed:
        why = "; ".join(row["errors"]) or "a change it depends on failed"
        console.print(
            f"  [red]x[/] {row['domain']}: {row['failed']} change(s) failed, {row['skipped']} "
            f"skipped: {escape(why)}"
        )
    for failure in result["apply"].get("failed", []):
        if _domain_of(_parse_key(failure["resource"])) is None:
            console.print(f"  [red]x[/] {failure['resource']}: {escape(failure['error'])}")


def _parse_key(text: str) -> ResourceKey:
    from penguinctl.resources import ResourceKey

    return ResourceKey.parse(text)
