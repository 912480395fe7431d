"""The process ``penguinctl serve`` runs besides its HTTP app: leader election, the scheduler,
run heartbeats and, when asked, the campaign worker; started and stopped as one."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from penguinctl.control import runs
from penguinctl.control.leader import Leadership
from penguinctl.control.scheduler import Scheduler

log = logging.getLogger("penguinctl.serve")


class ControlPlane:
    def __init__(
        self,
        app: Any,
        *,
        clock: Any,
        config: Any,
        metrics: Any = None,
        with_worker: bool = False,
        wake: float = 1.0,
        worker_poll: float = 30.0,
    ) -> None:
        self.app = app
        self.clock = clock
        self.owner = runs.process_id()
        self.leadership = Leadership(app.db, holder=self.owner)
        self.heartbeats = runs.Heartbeats(app.db)
        self.scheduler = Scheduler(
            app,
            clock=clock,
            config=config,
            leadership=self.leadership,
            owner=self.owner,
            heartbeats=self.heartbeats,
            metrics=metrics,
            wake=wake,
        )
        self.metrics = metrics
        self.with_worker = with_worker
        self.worker_poll = worker_poll
        self.worker: Any = None
        self.events: Any = None
        self._events_stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._scheduling = False

    def role(self) -> str:
        return self.scheduler.role

    def claim(self) -> None:
        """Refuse to start a second serve on one SQLite state store (``LockHeld``)."""
        self.leadership.claim_process()

    def start(self, *, scheduler: bool = True) -> None:
        """Heartbeats always (the dashboard's "run now" runs jobs in this process, scheduler or
        not: they beat like scheduled ones, or a leader elsewhere would fail them as stale);
        the scheduler, events and the worker only with ``scheduler``."""
        self.heartbeats.start()
        self._scheduling = scheduler
        if not scheduler:
            return
        thread = threading.Thread(target=self.scheduler.run, name="scheduler", daemon=True)
        thread.start()
        self._threads.append(thread)
        self._start_events()
        if self.with_worker:
            self._start_worker()

    def _make_worker(self) -> Any:
        from penguinctl.campaigns.worker import Worker, WorkerOptions

        return Worker(
            self.app.db,
            secrets=self.app.secrets(),
            env=self.app.env,
            clock=self.clock,
            options=WorkerOptions(poll_interval=self.worker_poll),
            actor="serve:worker",
            on_progress=self.metrics.worker_progress if self.metrics is not None else None,
        )

    def _start_worker(self) -> None:
        """The campaign worker on its own thread. A worker that fails (its state store gone
        for a while, a bug) is logged and started again after a back-off (5 s doubling to
        5 min, reset by a run that lasted longer than its back-off); sends it had claimed are
        settled by the next worker's recovery like any crashed worker's."""
        self._worker_stop = threading.Event()
        self.worker = self._make_worker()

        def run() -> None:
            backoff = 5.0
            while True:
                started = time.monotonic()
                try:
                    summary = self.worker.run()
                    log.info("campaign worker stopped: %s sent", summary.counts.get("sent", 0))
                    return
                except Exception as exc:  # reported; the rest of serve goes on
                    log.error(
                        "campaign worker failed: %s; starting it again in %.0f s", exc, backoff
                    )
                if time.monotonic() - started > backoff:
                    backoff = 5.0
                if self._worker_stop.wait(backoff):
                    return
                backoff = min(backoff * 2, 300.0)
                self.worker = self._make_worker()

        thread = threading.Thread(target=run, name="worker", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _start_events(self) -> None:
        """Event delivery (webhooks, alert mails) in every replica: on PostgreSQL the
        replicas share it through SKIP LOCKED claims; a replica killed mid-request leaves its
        deliveries to be sent again, with the same id, after their lease."""
        from penguinctl.events.loop import EventLoop

        self.events = EventLoop(
            self.app.db, self.app.secrets(), env=self.app.env, clock=self.clock, owner=self.owner
        )
        thread = threading.Thread(
            target=self.events.run, args=(self._events_stop,), name="events", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def stop(self, grace: float = 30.0) -> None:
        """Stop scheduling, let running jobs finish (up to ``grace`` seconds), mark those that
        did not as interrupted, resign leadership so a standby takes over at once. Started
        without its scheduler: only the heartbeats stop."""
        if not self._scheduling:
            self.heartbeats.stop()
            self._interrupt_own()  # the dashboard's manual runs (ManualRuns) still running
            return
        self.scheduler.stop()
        self._events_stop.set()
        if self.worker is not None:
            self._worker_stop.set()
            self.worker.stop()
        for thread in self._threads:
            thread.join(timeout=grace)
        self.heartbeats.stop()
        if self.events is not None:
            self.events.close()
        try:
            self._interrupt_own()
        finally:
            self.leadership.close()

    def _interrupt_own(self) -> None:
        left = runs.interrupt_own(self.app.db, self.owner, finished=self.clock.now())
        if left:
            log.warning("%d job run(s) still running at exit were marked interrupted", left)
