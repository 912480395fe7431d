"""What the `secrets` commands share: auditing (paths and field names, never values), the
progress bar and the rotation clock. The commands live in ``commands_secrets`` (list, get, put;
it attaches the others), ``commands_secrets_migrate`` and ``commands_secrets_rotate``."""

from __future__ import annotations

from typing import Any

from penguinctl import clock


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


def _now():
    """The rotation clock (aware UTC); tests replace it."""

    return clock.now()


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
