"""`secrets list [PREFIX] / get PATH [--reveal] / put PATH`, and what the other `secrets`
commands share (the group, auditing, progress).

The group's other commands live in their own modules: `migrate --to vault [--verify]` and
`migrate-layout [--dry-run]` in ``commands_secrets_migrate``, `rotate [TARGET...] [--kind K]
[--due] [--dry-run]` in ``commands_secrets_rotate``; what they share in ``secrets_common``.

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

from penguinctl.cli.conventions import ROWS, examples, output_formats
from penguinctl.cli.secrets_common import _audit, _audited

MASK = "******"

secrets_app = typer.Typer(
    help="List, read (masked), write, rotate and migrate secrets.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl secrets list tenants/acme/",
        "penguinctl secrets put tenants/acme/providers/cloudflare -f token.env",
        "penguinctl secrets rotate --due --dry-run",
        "penguinctl secrets migrate-layout --dry-run",
    ),
)


def register(app: typer.Typer) -> None:
    from penguinctl.cli import commands_secrets_migrate as migrating
    from penguinctl.cli import commands_secrets_rotate as rotating

    secrets_app.command("migrate")(migrating.migrate)
    secrets_app.command("migrate-layout")(migrating.migrate_layout)
    secrets_app.command("rotate")(rotating.rotate)
    app.add_typer(secrets_app, name="secrets")


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
    app.any_secrets_layout = True  # works on a store of any layout
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
    path: Annotated[str, typer.Argument(help="Secret path, e.g. tenants/acme/providers/cf.")],
    reveal: Annotated[
        bool, typer.Option("--reveal", help="Print the values (audited as secret.reveal).")
    ] = False,
) -> None:
    """Show a secret's fields, values masked unless --reveal."""
    from penguinctl.errors import NotFound

    app = ctx.obj
    app.any_secrets_layout = True
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
    path: Annotated[str, typer.Argument(help="Secret path, e.g. tenants/acme/providers/cf.")],
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
    app.any_secrets_layout = True
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
