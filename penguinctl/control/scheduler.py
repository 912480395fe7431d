"""The scheduler loop: while this process leads, start what is due, one run per series at a
time, on a small thread pool; stand by otherwise.

Time: due runs are computed from the product clock (``clock.now()``), so a test that moves a
``FileClock`` a week ahead sees the week's due jobs at the next wake-up (``wake`` seconds of
real time, never the simulated interval). Nothing is read from the database on a wake-up when
no series is due: the earliest ``next_run_at`` is cached and refreshed after each dispatch and
every ``refresh`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from penguinctl.control import runs, series
from penguinctl.control.leader import Leadership

log = logging.getLogger("penguinctl.serve")
STALE_CHECK = 5.0  # seconds between looks for runs whose process stopped beating


@dataclass
class Running:
    key: tuple[str, str, str]
    future: Future
    cancel: threading.Event
    deadline: float


class Scheduler:
    def __init__(
        self,
        app: Any,
        *,
        clock: Any,
        config: Any,
        leadership: Leadership,
        owner: str,
        heartbeats: runs.Heartbeats,
        metrics: Any = None,
        workers: int = 4,
        wake: float = 1.0,
        refresh: float = 30.0,
        lease_every: float = 5.0,
        standby_every: float = 2.0,
    ) -> None:
        self.app = app
        self.db = app.db
        self.clock = clock
        self.config = config
        self.leadership = leadership
        self.owner = owner
        self.heartbeats = heartbeats
        self.metrics = metrics
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")
        self.wake = wake
        self.refresh = refresh
        self.lease_every = lease_every
        self.standby_every = standby_every
        self.running: dict[tuple[str, str, str], Running] = {}
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._next_due: datetime | None = None
        self._next_refresh = 0.0
        self._next_lease = 0.0
        self._next_stale = 0.0
        self._synced_at = 0.0
        self.role = "starting"

    # -- control -------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        self._poke.set()

    def poke(self) -> None:
        """Re-read the schedule now (after a pause, resume or sync)."""
        self._next_refresh = 0.0
        self._poke.set()

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # the loop must survive a database blip
                log.exception("scheduler step failed; retrying")
                self._next_refresh = 0.0
                time.sleep(min(self.wake, 1.0))
            self._poke.wait(self.wake)
            self._poke.clear()
        self._shutdown()

    def step(self) -> None:
        mono = time.monotonic()
        self._reap()
        if mono >= self._next_lease:
            self._elect()
            self._next_lease = mono + (
                self.lease_every if self.leadership.leading else self.standby_every
            )
        if not self.leadership.leading:
            return
        now = self.clock.now()
        if mono >= self._next_stale:  # runs of a dead process are freed within ~25 s
            if runs.close_stale(self.db, finished=now):
                self._next_refresh = 0.0
            self._next_stale = mono + STALE_CHECK
        if mono >= self._next_refresh:
            if mono - self._synced_at >= self.refresh or self._synced_at == 0.0:
                series.sync(self.db, self.config, now)
                self._synced_at = mono
            self._next_due = series.next_due(self.db)
            self._next_refresh = mono + self.refresh
        if self._next_due is not None and self._next_due <= now:
            self.dispatch(now)
            self._next_due = series.next_due(self.db)
        self._watch_deadlines()

    def _elect(self) -> None:
        was = self.leadership.leading
        ok = self.leadership.renew() if was else self.leadership.acquire()
        role = "leader" if ok else "standby"
        if role != self.role:
            log.info("scheduler: %s (token %s)", role, self.leadership.token)
            if self.metrics is not None:
                self.metrics.set_leader(ok)
            self._next_refresh = 0.0
            self._synced_at = 0.0
        self.role = role
        if was and not ok:  # lost the lease: stop starting runs, ask the running ones to stop
            for r in self.running.values():
                r.cancel.set()

    def dispatch(self, now: datetime) -> int:
        started = 0
        for row in series.due(self.db, now):
            key = (row.job, row.tenant, row.target)
            if key in self.running or not self.config.known(row.job):
                continue
            group = self.config.job(row.job).group
            if group and any(
                k[1] == row.tenant and self.config.job(k[0]).group == group for k in self.running
            ):
                continue  # waits for the other job of its group (stays due)
            claimed = series.claim_tick(
                self.db,
                row,
                now,
                job=row.job,
                owner=self.owner,
                lease_token=self.leadership.token,
            )
            if claimed is None:
                continue
            self._submit(row, *claimed)
            started += 1
        return started

    def _submit(self, row: Any, run_id: int, tick: datetime, trigger: str) -> None:
        job = self.config.job(row.job)
        cfg = self.config.jobs[row.job]
        cancel = threading.Event()
        deadline = time.monotonic() + cfg.timeout.total_seconds()
        token = self.leadership.token

        def work() -> runs.Outcome | None:
            outcome = runs.execute(
                self.app,
                job,
                tenant=row.tenant,
                target=row.target,
                trigger=trigger,
                scheduled_for=tick,
                clock=self.clock,
                config=self.config,
                owner=self.owner,
                lease_token=token,
                cancel=cancel,
                deadline=deadline,
                heartbeats=self.heartbeats,
                run_id=run_id,
            )
            if outcome is not None:
                series.record_outcome(
                    self.db, row, outcome.status, self.clock.now(), self.config.backoff
                )
                if self.metrics is not None:
                    self.metrics.observe_run(job.name, outcome.status, outcome.duration)
                log.info(
                    "job %s%s: %s in %.1fs%s",
                    job.name,
                    f" [{row.tenant}]" if row.tenant else "",
                    outcome.status,
                    outcome.duration,
                    f": {outcome.error}" if outcome.error else "",
                )
            return outcome

        key = (row.job, row.tenant, row.target)
        self.heartbeats.add(run_id)  # beating while queued for a pool thread, too
        self.running[key] = Running(key, self.pool.submit(work), cancel, deadline)

    def _reap(self) -> None:
        for key, r in list(self.running.items()):
            if r.future.done():
                del self.running[key]
                exc = r.future.exception()
                if exc is not None:
                    log.error("job %s: %s", key[0], exc)
                self._poke.set()

    def _watch_deadlines(self) -> None:
        mono = time.monotonic()
        for r in self.running.values():
            if mono > r.deadline and not r.cancel.is_set():
                log.warning("job %s: past its timeout; asked to stop", r.key[0])
                r.cancel.set()

    def _shutdown(self, grace: float = 30.0) -> None:
        for r in self.running.values():
            r.cancel.set()
        end = time.monotonic() + grace
        for r in list(self.running.values()):
            # one still running past the grace: interrupt_own marks its run at exit
            with contextlib.suppress(TimeoutError):
                r.future.exception(timeout=max(0.0, end - time.monotonic()))
        self.pool.shutdown(wait=False, cancel_futures=True)
