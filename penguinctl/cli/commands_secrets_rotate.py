"""`secrets rotate [TARGET...] [--kind K] [--due] [--dry-run]`: the kinds of
``penguinctl.secret_rotation.registry``, kind by kind, target by target."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from penguinctl.cli import secrets_common as base
from penguinctl.cli.secrets_common import _audit, _progress


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
            "--kind",
            "-k",
            metavar="KIND",
            help="Only this kind (dkim, ssh, mailbox, mailu; repeatable).",
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
        engine=app.db, secrets=app.secrets(), actor=app.actor(), env=app.env, now=base._now
    )
    now = base._now()
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
                     f"key {i.key}" if getattr(i, "key", None) else
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
