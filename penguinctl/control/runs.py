"""Job runs as data: start (one running run per series), heartbeat, finish, interrupted runs,
history. ``execute`` is the one path every run takes, scheduled or asked for (``jobs run``)."""

from __future__ import annotations

import logging
import os
import secrets as _secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl.control.registry import Job, JobFailed, JobSkipped
from penguinctl.control.tables import JobRun, db_epoch
from penguinctl.errors import LockHeld, PenguinError
from penguinctl.state import audit
from penguinctl.state.columns import aware

log = logging.getLogger(__name__)

_R = JobRun.__table__
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 20.0  # a running run whose heartbeat is older is interrupted
ERROR_CHARS = 500


def process_id() -> str:
    """This process, as run rows and the lease name it: host:pid:nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{_secrets.token_hex(3)}"


@dataclass
class JobContext:
    """What a job function gets: the application context (state store, secrets, env, actor),
    its tenant (``""`` for platform jobs) and target, the clock, the schedules in force, and a
    cancel flag to check between units of work."""

    app: Any
    job: Job
    tenant: str
    target: str
    run_id: int
    scheduled_for: datetime
    clock: Any
    config: Any
    cancel: threading.Event = field(default_factory=threading.Event)
    _specs: Any = None

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def now(self) -> datetime:
        return self.clock.now()

    @property
    def actor(self) -> str:
        return f"job:{self.job.name}"

    def specs(self) -> Any:
        """The recorded spec of this job's tenant (plus the platform's documents)."""
        if self._specs is None:
            from penguinctl.control import specs

            self._specs = specs.load(self.app.db, [self.tenant] if self.tenant else None)
        return self._specs


class Heartbeats:
    """Refreshes the heartbeat of this process's live rows, one UPDATE per interval, in the
    database's clock (``db_epoch``): the running runs of ``job_runs`` by default; ``table``,
    ``column`` and ``live`` (the statuses still beating) name another table's (``api_plans``)."""

    def __init__(
        self,
        engine: Any,
        interval: float = HEARTBEAT_SECONDS,
        *,
        table: sa.Table = _R,
        column: str = "heartbeat",
        live: tuple[str, ...] = ("running",),
        name: str = "job-heartbeats",
    ) -> None:
        self.engine = engine
        self.interval = interval
        self.table, self.column, self.live, self.name = table, column, live, name
        self.ids: set[Any] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, row_id: Any) -> None:
        with self._lock:
            self.ids.add(row_id)

    def discard(self, row_id: Any) -> None:
        with self._lock:
            self.ids.discard(row_id)

    def beat(self) -> None:
        with self._lock:
            ids = sorted(self.ids)
        if not ids:
            return
        try:
            t = self.table
            with self.engine.begin() as conn:
                conn.execute(
                    sa.update(t)
                    .where(t.c.id.in_(ids), t.c.status.in_(self.live))
                    .values({self.column: db_epoch(self.engine.dialect.name)})
                )
        except sa.exc.SQLAlchemyError as exc:
            # the next beat tries again; a long outage makes the rows stale, as it should
            log.warning("%s: heartbeat of %d row(s) failed: %s", self.name, len(ids),
                        type(exc).__name__)  # fmt: skip

    def start(self) -> Heartbeats:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.beat()

        self._thread = threading.Thread(target=loop, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _insert_running(
    conn: Any,
    job: str,
    *,
    tenant: str,
    target: str,
    trigger: str,
    scheduled_for: datetime,
    started: datetime,
    owner: str,
    lease_token: int | None,
) -> int:
    return conn.execute(
        sa.insert(_R)
        .values(
            job=job,
            tenant=tenant,
            target=target,
            trigger=trigger,
            scheduled_for=scheduled_for,
            started_at=started,
            status="running",
            summary={},
            host=socket.gethostname(),
            pid=os.getpid(),
            owner=owner,
            lease_token=lease_token,
            heartbeat=db_epoch(conn.dialect.name),
        )
        .returning(_R.c.id)
    ).scalar_one()


def start_run(
    engine: Any,
    job: Job,
    *,
    tenant: str,
    target: str,
    trigger: str,
    scheduled_for: datetime,
    started: datetime,
    owner: str,
    lease_token: int | None,
) -> int | None:
    """Insert the running row; None when the series already has a running run (or, for a
    scheduled tick, when that tick already ran): a job never overlaps itself."""
    try:
        with engine.begin() as conn:
            return _insert_running(
                conn,
                job.name,
                tenant=tenant,
                target=target,
                trigger=trigger,
                scheduled_for=scheduled_for,
                started=started,
                owner=owner,
                lease_token=lease_token,
            )
    except sa.exc.IntegrityError:
        return None


def series_running(engine: Any, job: str, tenant: str, target: str) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(
                sa.select(_R.c.id).where(
                    _R.c.job == job,
                    _R.c.tenant == tenant,
                    _R.c.target == target,
                    _R.c.status == "running",
                )
            ).first()
            is not None
        )


def finish_run(
    engine: Any,
    run_id: int,
    *,
    status: str,
    summary: dict[str, Any],
    error: str | None,
    finished: datetime,
    duration: float,
    actor: str,
    job: str,
    tenant: str,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(_R)
            .where(_R.c.id == run_id)
            .values(
                status=status,
                summary=summary,
                error=error,
                finished_at=finished,
                duration_seconds=round(duration, 3),
            )
        )
        audit.record_many(
            conn,
            [
                {
                    "actor": actor,
                    "tenant": tenant,
                    "action": "job.run",
                    "resource": f"job/{job}",
                    "result": "ok" if status == "ok" else status,
                    "details": {"run_id": run_id, **({"error": error} if error else {})},
                }
            ],
        )
        if status in ("failed", "timeout"):
            from penguinctl.events.hooks import job_failed

            target, trigger = conn.execute(
                sa.select(_R.c.target, _R.c.trigger).where(_R.c.id == run_id)
            ).one()
            job_failed(
                conn,
                job=job,
                tenant=tenant,
                run_id=run_id,
                target=target,
                trigger=trigger,
                error=error or "",
            )


@dataclass
class Outcome:
    run_id: int
    status: str
    summary: dict[str, Any]
    error: str | None
    duration: float


def _one_line(exc: BaseException) -> str:
    from penguinctl.masking import mask

    text = str(exc) if isinstance(exc, PenguinError) else f"unexpected {type(exc).__name__}: {exc}"
    return mask(" ".join(text.split()))[:ERROR_CHARS]


def execute(
    app: Any,
    job: Job,
    *,
    tenant: str,
    target: str = "",
    trigger: str,
    scheduled_for: datetime,
    clock: Any,
    config: Any,
    owner: str,
    lease_token: int | None = None,
    cancel: threading.Event | None = None,
    deadline: float | None = None,
    heartbeats: Heartbeats | None = None,
    on_start: Callable[[int], None] | None = None,
    run_id: int | None = None,
) -> Outcome | None:
    """Run ``job`` once for (tenant, target), recorded from start to finish. None when the
    series is already running elsewhere. ``deadline`` (monotonic) past: status ``timeout``.
    ``run_id``: the running row the scheduler already inserted when it claimed the tick."""
    run_id = run_id or start_run(
        app.db,
        job,
        tenant=tenant,
        target=target,
        trigger=trigger,
        scheduled_for=scheduled_for,
        started=clock.now(),
        owner=owner,
        lease_token=lease_token,
    )
    if run_id is None:
        return None
    if heartbeats is not None:
        heartbeats.add(run_id)
    if on_start is not None:
        on_start(run_id)
    ctx = JobContext(
        app=app,
        job=job,
        tenant=tenant,
        target=target,
        run_id=run_id,
        scheduled_for=scheduled_for,
        clock=clock,
        config=config,
        cancel=cancel or threading.Event(),
    )
    began = time.monotonic()
    summary: dict[str, Any] = {}
    error: str | None = None
    status = "ok"
    try:
        summary = job.function()(ctx) or {}
    except JobFailed as exc:
        summary, error, status = exc.summary, _one_line(exc), "failed"
    except JobSkipped as exc:
        summary, status = {"skipped": exc.message}, "skipped"
    except Exception as exc:  # any failure of one run is recorded; the scheduler goes on
        error, status = _one_line(exc), "failed"
    finally:
        duration = time.monotonic() - began
        if deadline is not None and time.monotonic() > deadline:
            status = "timeout"
            error = error or f"took longer than its timeout ({duration:.0f} s)"
        if heartbeats is not None:
            heartbeats.discard(run_id)
        finish_run(
            app.db,
            run_id,
            status=status,
            summary=summary,
            error=error,
            finished=clock.now(),
            duration=duration,
            actor=f"job:{job.name}",
            job=job.name,
            tenant=tenant,
        )
    return Outcome(run_id, status, summary, error, duration)


def _interrupt(conn: Any, rows: list[Any], *, finished: datetime, error: str) -> None:
    """Mark ``rows`` interrupted and make their series due now: the next dispatch runs the
    latest tick again (the jobs resume where they stopped), so an interrupted run converges
    at once instead of at its next scheduled time."""
    from penguinctl.control.tables import JobSeries

    s = JobSeries.__table__
    conn.execute(
        sa.update(_R)
        .where(_R.c.id.in_([r.id for r in rows]), _R.c.status == "running")
        .values(status="interrupted", finished_at=finished, error=error)
    )
    for r in rows:
        if r.trigger == "manual":
            continue
        conn.execute(
            sa.update(s)
            .where(
                s.c.job == r.job,
                s.c.tenant == r.tenant,
                s.c.target == r.target,
                s.c.next_run_at > finished,
            )
            .values(next_run_at=finished)
        )


def close_stale(engine: Any, *, stale_after: float = STALE_SECONDS, finished: datetime) -> int:
    """Mark runs whose process stopped beating as ``interrupted`` (their series run again at
    once); returns how many."""
    now = db_epoch(engine.dialect.name)
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(_R.c.id, _R.c.job, _R.c.tenant, _R.c.target, _R.c.trigger, _R.c.owner).where(
                _R.c.status == "running", _R.c.heartbeat < now - stale_after
            )
        ).all()
        if not rows:
            return 0
        _interrupt(
            conn,
            rows,
            finished=finished,
            error="the process running it stopped (killed, or lost the database)",
        )
        audit.record_many(
            conn,
            [
                {
                    "actor": "serve",
                    "tenant": r.tenant,
                    "action": "job.interrupted",
                    "resource": f"job/{r.job}",
                    "result": "interrupted",
                    "details": {"run_id": r.id, "owner": r.owner},
                }
                for r in rows
            ],
        )
    return len(rows)


def interrupt_own(engine: Any, owner: str, *, finished: datetime) -> int:
    """At shutdown: this process's runs still running are interrupted (their series converge
    at their next run)."""
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(_R.c.id, _R.c.job, _R.c.tenant, _R.c.target, _R.c.trigger).where(
                _R.c.owner == owner, _R.c.status == "running"
            )
        ).all()
        if rows:
            _interrupt(conn, rows, finished=finished, error="serve stopped meanwhile")
        return len(rows)


def history(
    engine: Any, *, job: str | None = None, tenant: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    stmt = sa.select(_R).order_by(_R.c.id.desc()).limit(limit)
    if job is not None:
        stmt = stmt.where(_R.c.job == job)
    if tenant is not None:
        stmt = stmt.where(_R.c.tenant == tenant)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [to_json(r) for r in rows]


def to_json(r: Any) -> dict[str, Any]:
    def iso(ts: Any) -> str | None:
        return aware(ts).isoformat() if ts else None

    return {
        "id": r.id,
        "job": r.job,
        "tenant": r.tenant,
        "target": r.target,
        "trigger": r.trigger,
        "scheduled_for": iso(r.scheduled_for),
        "started": iso(r.started_at),
        "finished": iso(r.finished_at),
        "status": r.status,
        "duration_seconds": r.duration_seconds,
        "summary": r.summary,
        "error": r.error,
        "host": r.host,
        "pid": r.pid,
        "lease_token": r.lease_token,
    }


def busy_error(job: str, tenant: str) -> LockHeld:
    return LockHeld(
        f"job {job}{' for ' + tenant if tenant else ''} is already running",
        hint="`penguinctl jobs history` shows it; a job never runs twice at once",
    )
