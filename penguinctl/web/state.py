"""What the HTTP app's routes need, passed explicitly (nothing built at import time)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class WebState:
    db: Any  # the state store (SQLAlchemy engine)
    secrets: Callable[[], Any]  # the secrets backend, opened on first use
    env: dict[str, str]
    metrics: Any  # penguinctl.web.metrics.Metrics
    role: Callable[[], str] = lambda: "standby"  # leader | standby | starting (the scheduler)
    clock: Any = None
    # start a job run now (job, tenant, target) -> started; set by serve (the dashboard's "run now")
    run_now: Callable[[str, str, str], bool] | None = None
    read_db: Any = None  # the read engine of the API's hot reads (web.api.reads), made on use
    read_pool: Any = None  # their PostgreSQL connections (web.api.reads.AsyncReads), made on use
    read_conns: dict[int, Any] = field(default_factory=dict)  # their SQLite ones, per loop thread
    _plan_beats: Any = None  # the heartbeats of this process's API apply jobs, started on use
    _applies: list[threading.Thread] = field(default_factory=list)  # this process's apply jobs
    key_lookups: Any = None  # API key lookups in flight (identity.dependency), made on use
    _unsubscribe_secret: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def unsubscribe_secret(self) -> bytes:
        """The key unsubscribe tokens are signed with (read once; created by campaign launch)."""
        with self._lock:
            if self._unsubscribe_secret is None:
                from penguinctl.campaigns.message import unsubscribe_secret

                self._unsubscribe_secret = unsubscribe_secret(self.secrets(), create=False)
            return self._unsubscribe_secret

    def plan_heartbeats(self) -> Any:
        """The heartbeats of the apply jobs this process runs (``services.plans.heartbeats``),
        started on first use; one thread beats them all."""
        with self._lock:
            if self._plan_beats is None:
                from penguinctl.services.plans import heartbeats

                self._plan_beats = heartbeats(self.db).start()
            return self._plan_beats

    def track_apply(self, thread: threading.Thread) -> None:
        """An API apply job this process runs (``services.plans.start_thread``)."""
        with self._lock:
            self._applies = [t for t in self._applies if t.is_alive()]
            self._applies.append(thread)

    def running_applies(self) -> list[threading.Thread]:
        with self._lock:
            return [t for t in self._applies if t.is_alive()]

    def finish_applies(self, grace: float, clock: Callable[[], float]) -> int:
        """Wait up to ``grace`` seconds (``clock``: a monotonic clock) for the running apply
        jobs to end; how many still run. A clean stop of `serve` calls this: a job it waited
        for is recorded as it ended, not failed later by a reaper with its locks held until
        then. One still running dies with the process, like a crash (its plan is failed and
        its locks released by the next reaper; a re-run converges)."""
        deadline = clock() + grace
        for thread in self.running_applies():
            thread.join(timeout=max(0.0, deadline - clock()))
        return len(self.running_applies())

    def stripe_webhook_secret(self) -> str | None:
        """``STRIPE_WEBHOOK_SECRET``, else field ``webhook_secret`` of
        ``platform/providers/stripe``."""
        from penguinctl import secret_paths

        value = self.env.get("STRIPE_WEBHOOK_SECRET")
        if value:
            return value
        try:
            secret = self.secrets().get(secret_paths.provider("", "stripe")) or {}
        except Exception:  # not configured: the hook answers 503
            return None
        found = secret.get("webhook_secret")
        return found.reveal() if found is not None else None
