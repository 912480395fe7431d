"""``run now`` from the dashboard: a manual run of one job series, on a thread of the serve
process, through the same path as `penguinctl jobs run` (recorded as trigger ``manual``; a series
already running is not started twice). The request returns at once.

Its runs are recorded under the serve's own owner id (``ControlPlane.owner``), so a clean stop
treats them as it treats scheduled runs: :meth:`ManualRuns.stop` asks them to stop and waits a
grace period, and ``runs.interrupt_own`` marks the ones still running ``interrupted``."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger("penguinctl.web.dashboard")
MAX_CONCURRENT = 4


class ManualRuns:
    def __init__(
        self, app: Any, *, config: Any, clock: Any, heartbeats: Any, owner: str | None = None
    ) -> None:
        from penguinctl.control import runs

        self.app = app
        self.config = config
        self.clock = clock
        self.heartbeats = heartbeats
        self.owner = owner or runs.process_id()
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        self._running: dict[threading.Thread, threading.Event] = {}  # thread -> its cancel flag
        self._lock = threading.Lock()
        self._stopped = False

    def __call__(self, job: str, tenant: str, target: str) -> bool:
        try:
            the_job = self.config.job(job)
        except Exception:  # not a configured job any more
            return False
        if not self._slots.acquire(blocking=False):
            return False
        cancel = threading.Event()
        thread = threading.Thread(
            target=self._run,
            args=(the_job, tenant, target, cancel),
            name=f"manual-{job}",
            daemon=True,
        )
        with self._lock:
            if self._stopped:  # serve is stopping: no new run
                self._slots.release()
                return False
            self._running = {t: c for t, c in self._running.items() if t.is_alive()}
            self._running[thread] = cancel
            thread.start()
        return True

    def stop(self, grace: float = 30.0) -> int:
        """No new run; the running ones are asked to stop (their cancel flag) and waited for up
        to ``grace`` seconds. How many still run (``runs.interrupt_own`` marks them)."""
        with self._lock:
            self._stopped = True
            running = dict(self._running)
        for cancel in running.values():
            cancel.set()
        end = time.monotonic() + grace
        for thread in running:
            thread.join(timeout=max(0.0, end - time.monotonic()))
        return sum(t.is_alive() for t in running)

    def _run(self, job: Any, tenant: str, target: str, cancel: threading.Event) -> None:
        from penguinctl.control import runs

        try:
            cfg = self.config.jobs.get(job.name)
            deadline = time.monotonic() + cfg.timeout.total_seconds() if cfg else None
            runs.execute(
                self.app, job, tenant=tenant, target=target, trigger="manual",
                scheduled_for=self.clock.now(), clock=self.clock, config=self.config,
                owner=self.owner, deadline=deadline, heartbeats=self.heartbeats, cancel=cancel,
            )  # fmt: skip
        except Exception as exc:  # recorded by execute when it got that far; logged here
            log.error("manual run of %s for %s failed: %s", job.name, tenant or "(platform)", exc)
        finally:
            self._slots.release()
