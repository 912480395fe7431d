"""Run one task per host in parallel, each host's failure isolated from the others.

``fan_out(hosts, task, parallel=N)`` calls ``task(host)`` on up to N worker threads and
classifies each host:

- ``changed``: the task returned True, or an object whose ``changed`` attribute is true;
- ``ok``: it returned anything else (False, None, an unchanged result);
- ``unreachable``: it raised ``SshUnreachable`` (no session could be set up);
- ``failed``: it raised any other ``Exception`` (a ``HostKeyChanged`` is a failure, not an
  unreachable host: the host answered, with the wrong key);
- ``skipped``: it never started because ``max_fail_percent`` was exceeded.

With ``max_fail_percent`` set, once failed + unreachable hosts exceed that percentage of all
hosts, no new host is started; tasks already running finish and are reported. ``progress`` is
called with each ``HostResult`` as it completes, on the calling thread (safe for Rich output).
Ctrl-C cancels hosts not yet started and propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from penguinctl.remote.errors import SshUnreachable

H = TypeVar("H", bound=Hashable)

STATUSES = ("ok", "changed", "failed", "unreachable", "skipped")


@dataclass
class HostResult:
    """One host's outcome. ``value`` is what the task returned (kept out of ``to_json``);
    ``error`` is the one-line message of what it raised."""

    host: str
    status: str
    duration: float = 0.0
    error: str | None = None
    value: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "status": self.status,
            "duration": round(self.duration, 3),
            "error": self.error,
        }


@dataclass
class FanoutSummary:
    """Every host's result, in the order the hosts were given."""

    results: list[HostResult] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for r in self.results:
            counts[r.status] += 1
        return counts

    @property
    def ok(self) -> bool:
        """True when every host ended ok or changed."""
        return all(r.status in ("ok", "changed") for r in self.results)

    def by_status(self, status: str) -> list[str]:
        return [r.host for r in self.results if r.status == status]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "stopped_early": self.stopped_early,
            "counts": self.counts,
            "hosts": [r.to_json() for r in self.results],
        }


def _classify(value: Any) -> str:
    changed = value if isinstance(value, bool) else bool(getattr(value, "changed", False))
    return "changed" if changed else "ok"


def _error_text(exc: BaseException) -> str:
    from penguinctl.errors import PenguinError

    text = " ".join(str(exc).split())
    if isinstance(exc, PenguinError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Runner(Generic[H]):
    def __init__(self, task: Callable[[H], Any], name: Callable[[H], str]) -> None:
        self.task, self.name = task, name

    def __call__(self, host: H) -> HostResult:
        start = time.monotonic()
        try:
            value = self.task(host)
        except SshUnreachable as exc:
            status, error, value = "unreachable", _error_text(exc), None
        except Exception as exc:  # isolate the host: any failure is its own
            status, error, value = "failed", _error_text(exc), None
        else:
            status, error = _classify(value), None
        return HostResult(self.name(host), status, time.monotonic() - start, error, value)


def fan_out(
    hosts: Sequence[H],
    task: Callable[[H], Any],
    *,
    parallel: int = 10,
    max_fail_percent: float | None = None,
    progress: Callable[[HostResult], None] | None = None,
    name: Callable[[H], str] = str,
) -> FanoutSummary:
    """Run ``task`` once per host (see the module docstring for the classification). ``name``
    gives the host's label in results. Never raises for a task's exception."""
    runner = _Runner(task, name)
    results: dict[int, HostResult] = {}
    pending = list(enumerate(hosts))
    pending.reverse()  # pop() from the end keeps the given order
    failures = 0
    stopped = False
    total = len(hosts)
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="fanout") as pool:
        running: dict[Future[HostResult], int] = {}
        try:
            while pending or running:
                while pending and not stopped and len(running) < max(1, parallel):
                    index, host = pending.pop()
                    running[pool.submit(runner, host)] = index
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    index = running.pop(fut)
                    result = fut.result()
                    results[index] = result
                    if result.status in ("failed", "unreachable"):
                        failures += 1
                    if progress is not None:
                        progress(result)
                if (
                    max_fail_percent is not None
                    and not stopped
                    and failures * 100.0 / total > max_fail_percent
                ):
                    stopped = True
        except BaseException:
            for fut in running:
                fut.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    for index, host in pending:
        results[index] = HostResult(name(host), "skipped")
    summary = FanoutSummary(
        [results[i] for i in range(total)], stopped_early=stopped and bool(pending)
    )
    return summary
