"""``run now`` from the dashboard: a manual run of one job series, on a thread of the serve
process, through the same path as `penguinctl jobs run` (recorded as trigger ``manual``; a series
already running is not started twice). The request returns at once."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger("penguinctl.web.dashboard")
MAX_CONCURRENT = 4


class ManualRuns:
    def __init__(self, app: Any, *, config: Any, clock: Any, heartbeats: Any) -> None:
        self.app = app
        self.config = config
        self.clock = clock
        self.heartbeats = heartbeats
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)

    def __call__(self, job: str, tenant: str, target: str) -> bool:
        try:
            the_job = self.config.job(job)
        except Exception:  # not a configured job any more
            return False
        if not self._slots.acquire(blocking=False):
            return False
        thread = threading.Thread(
            target=self._run, args=(the_job, tenant, target), name=f"manual-{job}", daemon=True
        )
        thread.start()
        return True

    def _run(self, job: Any, tenant: str, target: str) -> None:
        from penguinctl.control import runs

        try:
            cfg = self.config.jobs.get(job.name)
            deadline = time.monotonic() + cfg.timeout.total_seconds() if cfg else None
            runs.execute(
                self.app, job, tenant=tenant, target=target, trigger="manual",
                scheduled_for=self.clock.now(), clock=self.clock, config=self.config,
                owner=runs.process_id(), deadline=deadline, heartbeats=self.heartbeats,
            )  # fmt: skip
        except Exception as exc:  # recorded by execute when it got that far; logged here
            log.error("manual run of %s for %s failed: %s", job.name, tenant or "(platform)", exc)
        finally:
            self._slots.release()
