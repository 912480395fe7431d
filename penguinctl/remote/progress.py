"""A live fan-out display on stderr: one row per server with its current step, then its final
status; only on a terminal in text output (``fanout_progress`` returns a no-op otherwise).

``step`` and ``done`` may be called from worker threads: they only update a dict under a lock;
Rich's refresh thread draws it. The display is transient: the command's summary replaces it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

STYLE = {
    "ok": "green",
    "changed": "yellow",
    "failed": "red",
    "unreachable": "magenta",
    "skipped": "dim",
    "running": "cyan",
    "waiting": "dim",
}


class NullProgress:
    """Same methods as ``FanoutProgress``, doing nothing (JSON output, not a terminal)."""

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def step(self, server: str, text: str) -> None:
        return None

    def done(self, result: Any) -> None:
        return None


class FanoutProgress(NullProgress):
    def __init__(self, console: Any, servers: list[str], title: str) -> None:
        self.console = console
        self.title = title
        self._rows: dict[str, list[Any]] = {s: ["waiting", "", None] for s in servers}
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self._live: Any = None

    def __enter__(self) -> FanoutProgress:
        from rich.live import Live

        self._live = Live(
            get_renderable=self._render,
            console=self.console,
            refresh_per_second=8,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def step(self, server: str, text: str) -> None:
        with self._lock:
            row = self._rows.setdefault(server, ["running", "", None])
            row[0], row[1] = "running", text
            if row[2] is None:
                row[2] = time.monotonic()

    def done(self, result: Any) -> None:
        with self._lock:
            row = self._rows.setdefault(result.host, ["", "", None])
            row[0] = result.status
            row[1] = result.error or ""
            row[2] = result.duration

    def _render(self) -> Any:
        from rich.markup import escape
        from rich.table import Table

        with self._lock:
            rows = [(name, *row) for name, row in self._rows.items()]
        counts: dict[str, int] = {}
        for _, status, _, _ in rows:
            counts[status] = counts.get(status, 0) + 1
        order = {"running": 0, "failed": 1, "unreachable": 1, "waiting": 3}
        rows.sort(key=lambda r: order.get(r[1], 2))
        room = max(3, self.console.size.height - 5)
        shown, hidden = rows[:room], len(rows) - min(room, len(rows))
        elapsed = time.monotonic() - self._start
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        table = Table(
            title=f"{escape(self.title)}  [dim]{elapsed:.1f}s  {summary}[/]",
            title_justify="left",
            box=None,
            show_header=False,
            pad_edge=False,
        )
        table.add_column("server", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("step", overflow="ellipsis", no_wrap=True)
        now = time.monotonic()
        for name, status, text, clock in shown:
            if status == "running" and clock is not None:
                text = f"{escape(text)}  [dim]{now - clock:.1f}s[/]" if text else ""
            elif isinstance(clock, float) and status != "waiting":
                text = f"{escape(text)}  [dim]{clock:.1f}s[/]" if text else f"[dim]{clock:.1f}s[/]"
            style = STYLE.get(status, "white")
            table.add_row(escape(name), f"[{style}]{status}[/]", text)
        if hidden:
            table.add_row(f"[dim]... {hidden} more[/]", "", "")
        return table


def fanout_progress(app: Any, servers: list[str], title: str) -> NullProgress:
    """A live display on ``app.err`` when it is a terminal and the output is text."""
    if app.machine or not app.err.is_terminal:
        return NullProgress()
    return FanoutProgress(app.err, servers, title)
