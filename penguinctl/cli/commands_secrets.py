"""`secrets list [PREFIX] / get PATH [--reveal] / put PATH / migrate --to vault [--verify] /
rotate [TARGET...] [--kind K] [--due] [--dry-run]`.

Works on the configured secrets backend (``PENGUINCTL_SECRETS``). Every read and write through
these commands is recorded in the audit log (action, path, actor, result, field names); values
never reach the audit log, the state store or the output unless ``get --reveal`` prints them.
Rotation goes through the kinds of ``penguinctl.secret_rotation.registry``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from penguinctl import clock
from penguinctl.cli.conventions import ROWS, examples, output_formats

MASK = "******"

secrets_app = typer.Typer(
    help="List, read (masked), write, rotate and migrate secrets.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl secrets list tenants/acme",
        "penguinctl secrets get providers/cloudflare --reveal",
        "penguinctl secrets put providers/cloudflare -f token.env",
        "penguinctl secrets rotate --due --dry-run",
    ),
)


def register(app: typer.Typer) -> None:
    app.add_typer(secrets_app, name="secrets")


def _audit(app: Any, events: list[dict[str, Any]]) -> None:
    """Append audit events ``{action, path, result, details?}`` (never values)."""
    from penguinctl.state import audit
    from penguinctl.state.db import session_scope

    actor = app.actor()
    backend = app.settings.secrets_backend
    rows = [
        {
            "actor": actor,
            "tenant": e.get("tenant") or "",
            "action": e["action"],
            "resource": f"secret/{e['path']}" if e["path"] else "secret",
            "result": e["result"],
            "details": {"backend": e.get("backend", backend), **(e.get("details") or {})},
        }
        for e in events
    ]
    with session_scope(app.db) as session:
        audit.record_many(session, rows)


def _audited(app: Any, action: str, path: str, fn, details: dict[str, Any] | None = None):
    """Run ``fn()`` and audit it; a failure is audited with result ``error`` and re-raised."""
    try:
        result = fn()
    except Exception as exc:
        from penguinctl.errors import PenguinError

        reason = exc.message if isinstance(exc, PenguinError) else type(exc).__name__
        _audit(
            app,
            [
                {
                    "action": action,
                    "path": path,
                    "result": "error",
                    "details": {**(details or {}), "error": reason},
                }
            ],
        )
        raise
    return result


def parse_fields(text: str, *, source: str) -> dict[str, str]:
    """Secret fields from a JSON object or ``KEY=VALUE`` lines (``#`` comments, blank lines).

    Errors name the line number or key, never a value."""
    from penguinctl.errors import UsageError

    stripped = text.strip()
    if not stripped:
        raise UsageError(f"{source}: no fields given", hint="give KEY=VALUE lines or a JSON object")
    if stripped.startswith("{"):
        import json

        try:
            doc = json.loads(stripped)
        except ValueError as exc:
            raise UsageError(
                f"{source}: not a valid JSON object (line {getattr(exc, 'lineno', '?')})"
            ) from None
        if not isinstance(doc, dict) or not doc:
            raise UsageError(f"{source}: the JSON must be a non-empty object of fields")
        fields: dict[str, str] = {}
        for key, value in doc.items():
            if not isinstance(value, str | int | float | bool):
                raise UsageError(f"{source}: field {key!r} must be a string")
            fields[str(key)] = value if isinstance(value, str) else str(value)
        return fields
    fields = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{source}:{number}: expected KEY=VALUE")
        if key in fields:
            raise UsageError(f"{source}:{number}: field {key!r} given twice")
        fields[key] = value
    return fields


@secrets_app.command("list")
@output_formats(*ROWS)
def list_(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Only paths starting with this.")] = "",
) -> None:
    """Secret paths in the configured backend (names only)."""
    app = ctx.obj
    backend = app.secrets()
    paths = _audited(app, "secret.list", prefix, lambda: backend.list(prefix))
    _audit(
        app,
        [
            {
                "action": "secret.list",
                "path": prefix,
                "result": "ok",
                "details": {"count": len(paths)},
            }
        ],
    )

    def text(console) -> None:
        from rich.markup import escape

        for p in paths:
            console.print(escape(p))
        if not paths:
            console.print(f"No secrets under {escape(prefix or '/')} in the {backend.name}.")

    app.emit({"backend": backend.name, "prefix": prefix, "paths": paths}, text)


@secrets_app.command("get")
def get(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="Secret path, e.g. providers/cloudflare.")],
    reveal: Annotated[
        bool, typer.Option("--reveal", help="Print the values (audited as secret.reveal).")
    ] = False,
) -> None:
    """Show a secret's fields, values masked unless --reveal."""
    from penguinctl.errors import NotFound

    app = ctx.obj
    backend = app.secrets()
    action = "secret.reveal" if reveal else "secret.read"
    fields = _audited(app, action, path, lambda: backend.get(path))
    meta = _audited(app, action, path, lambda: backend.meta(path)) if fields else None
    _audit(
        app,
        [
            {
                "action": action,
                "path": path,
                "result": "ok" if fields is not None else "missing",
                "details": {"fields": sorted(fields or {})},
            }
        ],
    )
    if fields is None:
        raise NotFound(
            f"secret {path} is not in the {backend.name}",
            hint="see `penguinctl secrets list`",
        )
    shown = {k: (v.reveal() if reveal else MASK) for k, v in sorted(fields.items())}
    data: dict[str, Any] = {"backend": backend.name, "path": path, "fields": shown}
    if meta is not None:
        data.update(version=meta.version, created_at=meta.created_at, updated_at=meta.updated_at)

    def text(console) -> None:
        from rich.markup import escape

        head = f"{path} ({backend.name}"
        head += f", version {meta.version})" if meta is not None else ")"
        console.print(escape(head))
        for k, v in shown.items():
            console.print(f"  {escape(k)}: {escape(v)}", soft_wrap=True)

    app.emit(data, text)


@secrets_app.command("put")
def put(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="Secret path, e.g. providers/cloudflare.")],
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", metavar="FILE", help="Read the fields from this file instead of stdin."
        ),
    ] = None,
) -> None:
    """Write a new version of a secret. Fields come from --file or stdin, as KEY=VALUE lines or
    a JSON object; never from the command line (it would land in shell history)."""
    from penguinctl.errors import UsageError

    app = ctx.obj
    if file is not None:
        try:
            text_in = file.read_text()
        except OSError as exc:
            raise UsageError(f"cannot read {file}: {exc.strerror or type(exc).__name__}") from None
        source = str(file)
    else:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError(
                "no fields: pipe KEY=VALUE lines or a JSON object on stdin, or pass --file",
                hint=f"e.g. printf 'api_token=%s\\n' \"$TOKEN\" | penguinctl secrets put {path}",
            )
        text_in = sys.stdin.read()
        source = "stdin"
    fields = parse_fields(text_in, source=source)
    backend = app.secrets()
    details = {"fields": sorted(fields)}
    meta = _audited(app, "secret.write", path, lambda: backend.put(path, fields), details)
    _audit(
        app,
        [
            {
                "action": "secret.write",
                "path": path,
                "result": "ok",
                "details": {**details, "version": meta.version},
            }
        ],
    )
    data = {
        "backend": backend.name,
        "path": path,
        "version": meta.version,
        "fields": sorted(fields),
    }
    app.emit(
        data,
        lambda console: console.print(
            f"Wrote {len(fields)} field(s) to {path} ({backend.name}, version {meta.version})."
        ),
    )


def _same(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return False
    return {k: v.reveal() for k, v in a.items()} == {k: v.reveal() for k, v in b.items()}


@secrets_app.command("migrate")
def migrate(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", metavar="BACKEND", help="Target backend: vault.")],
    verify: Annotated[
        bool,
        typer.Option(
            "--verify", help="After copying, re-read every secret in Vault and compare it."
        ),
    ] = False,
) -> int:
    """Copy every keystore secret to Vault. Each copy is read back and compared; an identical
    copy already in Vault is skipped, so the command can be re-run safely."""
    from penguinctl.errors import SecretError, UsageError
    from penguinctl.providers.secrets.vault import VaultBackend

    app = ctx.obj
    if to != "vault":
        raise UsageError(f"--to {to!r}: only 'vault' is supported")
    source = app.keystore()
    target = app.secrets()
    if not isinstance(target, VaultBackend):
        target = VaultBackend.from_env(app.env)
    paths = source.list()
    counts = {"total": len(paths), "copied": 0, "skipped": 0, "verified": 0, "failed": 0}
    failed: list[str] = []
    events: list[dict[str, Any]] = []
    try:
        with _progress(app, len(paths)) as advance:
            for path in paths:
                fields = source.get(path)
                if fields is None:  # removed meanwhile
                    advance()
                    continue
                if _same(target.get(path), fields):
                    counts["skipped"] += 1
                    result = "skipped"
                else:
                    target.put(path, {k: v.reveal() for k, v in fields.items()})
                    if _same(target.get(path), fields):
                        counts["copied"] += 1
                        result = "copied"
                    else:
                        counts["failed"] += 1
                        failed.append(path)
                        result = "error"
                events.append(
                    {
                        "action": "secret.migrate",
                        "path": path,
                        "result": result,
                        "backend": "vault",
                        "details": {"from": "keystore", "fields": sorted(fields)},
                    }
                )
                advance()
        if verify:
            for path in paths:
                if path in failed:
                    continue
                if _same(target.get(path), source.get(path)):
                    counts["verified"] += 1
                else:
                    counts["failed"] += 1
                    failed.append(path)
                    events.append(
                        {
                            "action": "secret.migrate.verify",
                            "path": path,
                            "result": "error",
                            "backend": "vault",
                        }
                    )
    finally:
        _audit(app, events)
    data = {"to": "vault", "counts": counts, "failed": failed}

    def text(console) -> None:
        from rich.markup import escape

        line = (
            f"{counts['total']} secret(s): {counts['copied']} copied, "
            f"{counts['skipped']} already in Vault"
        )
        if verify:
            line += f", {counts['verified']} verified"
        console.print(line + (f", [red]{counts['failed']} failed[/]" if failed else "."))
        for p in failed:
            console.print(f"[red]failed[/] {escape(p)}")

    app.emit(data, text)
    if failed:
        raise SecretError(
            f"{len(failed)} secret(s) did not read back identically from Vault: {failed[0]}"
            + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""),
            hint="re-run `penguinctl secrets migrate --to vault`; identical copies are skipped",
        )
    return 0


def _now():
    """The rotation clock (aware UTC); tests replace it."""

    return clock.now()


def _when(ts: Any, now: Any) -> str:
    if ts is None or ts <= now:
        return "now"
    return f"{ts:%Y-%m-%d}" if (ts - now).days >= 1 else f"{ts:%Y-%m-%d %H:%M}"


def _reason(exc: BaseException, app: Any) -> str:
    """A failure's one-line reason: a PenguinError's message (never holds a value), else only
    the exception's type (its text might); the traceback is printed with --debug."""
    from penguinctl.errors import PenguinError
    from penguinctl.masking import mask

    if isinstance(exc, PenguinError):
        return mask(exc.message)
    if app.debug:
        import traceback

        print(mask("".join(traceback.format_exception(exc))), file=sys.stderr)
    return f"unexpected {type(exc).__name__} (run with --debug for the traceback)"


@secrets_app.command("rotate")
def rotate(
    ctx: typer.Context,
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="TARGET", help="Rotate these now, due or not (a target name or a secret path)."
        ),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind", "-k", metavar="KIND", help="Only this kind (dkim, ssh, mailbox; repeatable)."
        ),
    ] = None,
    due: Annotated[bool, typer.Option("--due", help="Rotate everything that is due.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be rotated; change nothing.")
    ] = False,
) -> int:
    """Rotate credentials. Without TARGET or --due, list every managed credential and when it is
    due. --due rotates what is due (from cron); TARGETs are rotated now. Kind by kind, target by
    target: a failure is recorded and audited and the others go on (exit 6 when some failed)."""
    from penguinctl.errors import PartialApply, ProviderError, UsageError
    from penguinctl.secret_rotation import registry
    from penguinctl.secret_rotation.base import RotationContext

    app = ctx.obj
    if targets and due:
        raise UsageError("name targets or pass --due, not both")
    wanted = list(dict.fromkeys(kind or []))
    classes: dict[str, Any] = {}
    broken: dict[str, BaseException] = {}
    for k in wanted or registry.kinds():
        try:
            cls = registry.load(k)
        except UsageError:
            raise
        except Exception as exc:  # a broken module: reported, the other kinds go on
            broken[k] = exc
            continue
        if cls is not None:
            classes[k] = cls
    missing = [k for k in wanted if k not in classes and k not in broken]
    if missing:
        raise UsageError(
            f"rotation kind {', '.join(missing)} is not available in this installation",
            hint=f"available: {', '.join(classes) or 'none'}",
        )
    skipped = [k for k in registry.kinds() if k not in classes and k not in broken and not wanted]
    rctx = RotationContext(
        engine=app.db, secrets=app.secrets(), actor=app.actor(), env=app.env, now=_now
    )
    now = _now()
    results: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    rotations: dict[str, Any] = {}
    items: list[Any] = []
    for name in wanted or registry.kinds():
        if name not in classes and name not in broken:
            continue
        try:
            if name in broken:
                raise broken[name]
            rotation = classes[name](rctx)
            found = rotation.candidates()
        except Exception as exc:  # one broken kind must not stop the others
            error = _reason(exc, app)
            results.append({"kind": name, "target": None, "path": None, "result": "failed",
                            "error": error})  # fmt: skip
            events.append({"action": "secret.rotate.candidates", "path": "", "result": "error",
                           "details": {"kind": name, "error": error}})  # fmt: skip
            continue
        rotations[name] = rotation
        items += sorted(found, key=lambda i: (i.target, i.path))

    if targets:
        unknown = [t for t in targets if not any(t in (i.target, i.path) for i in items)]
        # kind by kind, in listing order
        chosen = [i for i in items if i.target in targets or i.path in targets]
        if unknown:
            raise UsageError(
                f"nothing to rotate named {', '.join(unknown)}"
                + (f" (kinds: {', '.join(classes)})" if classes else ""),
                hint="`penguinctl secrets rotate` lists every managed credential",
            )
    elif due:
        chosen = [i for i in items if i.is_due(now)]
    else:
        chosen = items
    acting = bool(targets or due) and not dry_run

    if acting:
        from penguinctl.secret_rotation.service import rotate_items

        with _progress(app, len(chosen), "Rotating secrets", minimum=2) as advance:
            done, done_events = rotate_items(
                rotations, chosen, reason=lambda exc: _reason(exc, app), advance=advance
            )
        results += done
        events += done_events
    if events:
        _audit(app, events)

    data = {
        "now": now.isoformat(),
        "mode": "rotate" if acting else ("dry-run" if (targets or due) else "list"),
        "items": [i.to_json(now) for i in chosen],
        "results": results,
        "skipped_kinds": skipped,
    }

    def text(console) -> None:
        from rich.markup import escape

        from penguinctl.cli.render import table

        if not acting:
            if chosen:
                rows = [
                    [i.kind, escape(i.target), escape(i.tenant or "-"), escape(i.path),
                     f"{i.last_rotated:%Y-%m-%d}" if i.last_rotated else "never",
                     _when(i.due_at, now)]
                    for i in chosen
                ]  # fmt: skip
                title = "Would rotate" if (targets or due) else None
                table(console, ["kind", "target", "tenant", "path", "last rotated", "due"], rows,
                      title=title)  # fmt: skip
            else:
                console.print("Nothing is due." if due else "No credentials to rotate.")
        elif not chosen:
            console.print("Nothing is due.")
        for r in results:
            what = escape(f"{r['kind']} {r['target'] or ''}".strip())
            if r["result"] == "rotated":
                console.print(f"[green]rotated[/] {what}: {escape(r['summary'])}")
            else:
                console.print(f"[red]failed[/]  {what}: {escape(r['error'])}")
        if skipped and not app.machine:
            console.print(f"[dim]not available here: {', '.join(skipped)}[/]")

    app.emit(data, text)
    failed = [r for r in results if r["result"] == "failed"]
    if failed:
        first = failed[0]
        msg = (
            f"{len(failed)} of {len(results)} rotation(s) failed; first: {first['kind']} "
            f"{first['target'] or '(listing)'}: {first['error']}"
        )
        hint = "fix the cause and run `penguinctl secrets rotate` again; finished ones are skipped"
        if any(r["result"] == "rotated" for r in results):
            raise PartialApply(msg, hint=hint)
        raise ProviderError(msg, hint=hint)
    return 0


def _progress(app: Any, total: int, label: str = "Migrating secrets", minimum: int = 20):
    """A context manager yielding ``advance()``; a bar on a terminal in text mode only."""
    from contextlib import contextmanager

    @contextmanager
    def bar():
        if app.machine or total < minimum or not app.err.is_terminal:
            yield lambda: None
            return
        from rich.progress import Progress

        with Progress(console=app.err, transient=True) as progress:
            task = progress.add_task(label, total=total)
            yield lambda: progress.advance(task)

    return bar()
