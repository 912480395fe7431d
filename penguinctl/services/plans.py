"""Plans made through the API: ``create`` (plan the documents, keep them with the checksum),
``start_apply`` (verify the checksum, queue the apply job), ``run_apply`` (the job: the same
``specs.apply`` as the CLI, lock and checksum included; the outcome, or the problem with its
CLI exit code, is recorded on the plan's row, which the status URL reads).

A queued or applying plan names its owner, the serve process running the job (host, pid and
the pid's start time), and the process's ``heartbeats`` (the control plane's ``Heartbeats``)
refresh the row's ``heartbeat`` every ``HEARTBEAT`` seconds, in the database's clock like a job
run's (``db_epoch``). ``reap`` (every serve, at start and every ``REAP_EVERY`` seconds:
``Reaper``) fails a job whose owner is gone: on this host, a pid that no longer runs (or now
names another process); elsewhere, no heartbeat for ``LEASE`` seconds, measured in SQL by the
same database clock, so the replicas' own clocks need not agree. The tenants' lock the dead
process held is released as ``state unlock`` would (only when its holder is gone), and the
engine's run it left ``running`` is closed as interrupted by the next apply of those tenants."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from penguinctl.control.runs import Heartbeats
from penguinctl.control.tables import db_epoch
from penguinctl.errors import ChecksumMismatch, NotFound, PenguinError, UsageError
from penguinctl.services import specs as spec_service
from penguinctl.services.context import ServiceContext
from penguinctl.services.tables import ApiPlan
from penguinctl.state.columns import aware

log = logging.getLogger("penguinctl.api.plans")
HEARTBEAT = 10.0  # seconds between a running job's heartbeats
LEASE = 60.0  # a job of another host without a heartbeat for this long (database clock) fails
REAP_EVERY = 30.0
MAX_CONCURRENT_APPLIES = 4
_slots = threading.BoundedSemaphore(MAX_CONCURRENT_APPLIES)
FINISHED = ("applied", "no-op", "failed")
LIVE = ("queued", "applying")  # a job's plan: its heartbeat goes on, its owner must be alive


def to_json(row: ApiPlan, *, with_plan: bool = True) -> dict[str, Any]:
    def iso(v: Any) -> str | None:
        return aware(v).isoformat() if v is not None else None

    data: dict[str, Any] = {
        "id": row.id,
        "tenant": row.tenant or None,
        "tenants": row.tenants,
        "operation": row.operation,
        "targets": row.targets,
        "files": sorted(row.documents),
        "checksum": row.checksum,
        "changes": row.changes,
        "status": row.status,
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "applied_by": row.applied_by,
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "exit_code": row.exit_code,
        "result": row.result or None,
    }
    if with_plan:
        data["plan"] = row.plan
    return data


def create(
    ctx: ServiceContext,
    documents: Mapping[str, str],
    *,
    targets: Sequence[str] = (),
    destroy: bool = False,
    refresh: bool = True,
) -> ApiPlan:
    """Plan ``documents`` (client file name -> YAML) and keep the plan for a later apply."""
    from penguinctl.control.specs import owner
    from penguinctl.state.db import session_scope

    loaded = spec_service.load_documents(documents, tenant=ctx.tenant)
    the_plan = spec_service.plan(ctx, loaded, destroy=destroy, targets=targets, refresh=refresh)
    row = ApiPlan(
        id="plan_" + secrets.token_hex(8),
        tenant=ctx.tenant or "",
        tenants=sorted({owner(d) for d in loaded.documents}),
        created_by=ctx.actor,
        operation="destroy" if destroy else "apply",
        targets=list(targets),
        documents=dict(documents),
        checksum=the_plan.checksum(),
        changes=len(the_plan.changes),
        plan=spec_service.plan_json(the_plan),
        created_at=ctx.now(),
    )
    with session_scope(ctx.db) as session:
        session.add(row)
    return row


def get(session: Session, plan_id: str, *, tenant: str | None) -> ApiPlan:
    row = session.get(ApiPlan, plan_id)
    if row is None or (tenant is not None and row.tenant != tenant):
        raise NotFound(f"no plan {plan_id!r}")
    return row


def start_apply(ctx: ServiceContext, plan_id: str, checksum: str) -> ApiPlan:
    """Claim the plan for applying (once): its checksum must be the one the caller reviewed."""
    from penguinctl.state.db import session_scope

    with session_scope(ctx.db) as session:
        row = get(session, plan_id, tenant=ctx.tenant)
        if checksum != row.checksum:
            raise ChecksumMismatch(
                f"checksum {checksum[:16]} is not plan {plan_id}'s ({row.checksum[:16]})",
                hint="apply the plan you reviewed, with its checksum",
            )
        claimed = session.execute(
            sa.update(ApiPlan.__table__)
            .where(ApiPlan.__table__.c.id == plan_id, ApiPlan.__table__.c.status == "planned")
            .values(
                status="queued",
                applied_by=ctx.actor,
                heartbeat=db_epoch(ctx.db.dialect.name),
                **_owner(),
            )
        ).rowcount
        if not claimed:
            raise UsageError(
                f"plan {plan_id} is {row.status}: a plan is applied once",
                hint="make a new plan (POST /plans)",
            )
    with session_scope(ctx.db) as session:
        return get(session, plan_id, tenant=None)


def heartbeats(db: Any, interval: float = HEARTBEAT) -> Heartbeats:
    """The heartbeats of a process's apply jobs (not started): the plans queued or applying
    among its ids are refreshed every ``interval`` seconds, in the database's clock."""
    return Heartbeats(db, interval, table=ApiPlan.__table__, column="heartbeat",
                      live=LIVE, name="plan-heartbeats")  # fmt: skip


def run_apply(
    ctx: ServiceContext,
    plan_id: str,
    *,
    force: bool = False,
    parallel: int = 4,
    beats: Heartbeats | None = None,
) -> None:
    """The apply job (in a thread of the serving process): never raises, records its outcome;
    ``beats`` (``heartbeats``, started) refresh the plan's heartbeat while it runs."""
    from penguinctl.state.db import session_scope

    def finish(status: str, exit_code: int, result: dict[str, Any]) -> None:
        with session_scope(ctx.db) as session:
            row = session.get(ApiPlan, plan_id)
            assert row is not None
            row.status, row.exit_code, row.result = status, exit_code, result
            row.finished_at = ctx.now()
            session.add(row)

    if beats is not None:
        beats.add(plan_id)
    try:
        _run_apply(ctx, plan_id, finish, force=force, parallel=parallel)
    finally:
        if beats is not None:
            beats.discard(plan_id)


def _run_apply(ctx: ServiceContext, plan_id: str, finish: Any, *, force: bool,
               parallel: int) -> None:  # fmt: skip
    from penguinctl.engine import raise_for_report
    from penguinctl.state.db import session_scope

    with _slots:
        try:
            with session_scope(ctx.db) as session:
                row = get(session, plan_id, tenant=None)
                row.status, row.started_at = "applying", ctx.now()
                session.add(row)
                documents, checksum = dict(row.documents), row.checksum
                destroy, targets = row.operation == "destroy", list(row.targets)
            loaded = spec_service.load_documents(documents, tenant=ctx.tenant)
            _, report = spec_service.apply(
                ctx,
                loaded,
                destroy=destroy,
                targets=targets,
                force=force,
                parallel=parallel,
                checksum=checksum,
                checksum_source=f"plan {plan_id}",
            )
            if report is None:
                finish("no-op", 0, {"changes": [], "status": "no-op"})
                return
            try:
                raise_for_report(report)
            except PenguinError as exc:
                finish("failed", int(exc.exit_code), {**report.to_json(), **_problem(exc, ctx)})
                return
            finish("applied", 0, report.to_json())
        except PenguinError as exc:
            finish("failed", int(exc.exit_code), _problem(exc, ctx))
        except Exception as exc:  # recorded; the detail goes to the server log only
            log.exception("apply of %s failed", plan_id)
            finish("failed", 1, {"problem": {"type": "urn:penguinctl:problem:unexpected",
                                             "title": "Internal error", "status": 500,
                                             "detail": type(exc).__name__}})  # fmt: skip


def _owner() -> dict[str, Any]:
    """This process as the owner of the jobs it runs."""
    import os
    import socket

    from penguinctl.procs import process_started

    pid = os.getpid()
    return {"owner_host": socket.gethostname(), "owner_pid": pid,
            "owner_started": process_started(pid)}  # fmt: skip


def _local(row: Any, host: str) -> bool:
    """Whether the job's owner is a process of this host (judged by its pid, not a lease)."""
    return row.owner_host is not None and row.owner_host == host and row.owner_pid is not None


def _gone(row: Any, *, host: str, lease: float) -> str | None:
    """Why the job of ``row`` (queued or applying; ``row.age``: seconds since its heartbeat by
    the database's clock, None without one) has no live owner, or None if it has one."""
    from penguinctl.procs import holder_alive

    if _local(row, host):
        if holder_alive(row.owner_pid, row.owner_started):
            return None
        return f"its serve process (pid {row.owner_pid} on {host}) is gone"
    if row.age is not None and row.age < lease:
        return None
    who = f"pid {row.owner_pid} on {row.owner_host}" if row.owner_host else "an older serve"
    return f"its serve process ({who}) sent no heartbeat for {lease:.0f} s"


def reap(db: Any, now: Any, *, actor: str, lease: float = LEASE) -> list[str]:
    """Fail the apply jobs (queued or applying) whose serve process is gone, release the
    tenants' locks such a process held, and return the plans' ids. Audited. Heartbeats are
    judged by the database's clock; ``now`` (the product clock) is only the recorded finish."""
    import socket

    from penguinctl.errors import ExitCode
    from penguinctl.state import audit
    from penguinctl.state.db import session_scope

    t = ApiPlan.__table__
    host = socket.gethostname()
    db_now = db_epoch(db.dialect.name)
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(t, (db_now - t.c.heartbeat).label("age")).where(t.c.status.in_(LIVE))
        ).all()
    failed: list[str] = []
    for row in rows:
        why = _gone(row, host=host, lease=lease)
        if why is None:
            continue
        detail = (
            f"plan {row.id} was {row.status} when {why}; some of its changes may have been "
            "applied: plan again (POST /plans) and apply the new plan"
        )
        code = int(ExitCode.INTERRUPTED)
        problem = {"type": "urn:penguinctl:problem:interrupted", "title": "Apply interrupted",
                   "status": 500, "exit_code": code, "detail": detail}  # fmt: skip
        same = [t.c.id == row.id, t.c.status == row.status,
                t.c.owner_pid.is_(None) if row.owner_pid is None
                else t.c.owner_pid == row.owner_pid]  # fmt: skip
        if not _local(row, host):  # judged by its heartbeat: still none (a beat meanwhile wins)
            same.append(sa.or_(t.c.heartbeat.is_(None), t.c.heartbeat <= db_now - lease))
        if row.owner_host is not None and row.owner_pid is not None:
            # first: a client that reads "failed" can apply a new plan at once
            _release_locks(db, row.owner_host, row.owner_pid, actor=actor)
        with session_scope(db) as session:
            done = session.execute(
                sa.update(t)
                .where(*same)
                .values(
                    status="failed", exit_code=code, result={"problem": problem}, finished_at=now
                )
            ).rowcount
            if not done:
                continue  # another replica reaped it, or the job finished or beat meanwhile
            for tenant in row.tenants or [row.tenant]:
                audit.record(session, actor=actor, tenant=tenant, action="plan.interrupted",
                             resource=f"plan/{row.id}", result="failed",
                             details={"was": row.status, "owner_host": row.owner_host,
                                      "owner_pid": row.owner_pid})  # fmt: skip
        log.warning("plan %s failed: %s", row.id, why)
        failed.append(row.id)
    return failed


def _release_locks(db: Any, host: str, pid: int, *, actor: str) -> None:
    """The tenants' locks that process held, removed when their holder is gone (the rule of
    ``state unlock`` without --force: a live holder, or one of another host on SQLite, stays)."""
    from sqlmodel import select

    from penguinctl.state.db import session_scope
    from penguinctl.state.models import LockRow
    from penguinctl.state.unlock import inspect, unlock

    with session_scope(db) as session:
        ids = {r.lock_id for r in session.exec(select(LockRow)) if r.host == host and r.pid == pid}
    for lock_id in sorted(ids):
        info = inspect(db, lock_id)
        if info is not None and info.holder == "gone":
            try:
                unlock(db, lock_id, actor=actor)
            except PenguinError as exc:  # released meanwhile
                log.info("lock %s: %s", lock_id, exc)


class Reaper:
    """``reap`` at start and every ``every`` seconds, in a thread of its own (``serve``)."""

    def __init__(self, db: Any, clock: Any, *, every: float = REAP_EVERY) -> None:
        import os
        import socket

        self.db, self.clock, self.every = db, clock, every
        self.actor = f"serve:{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def once(self) -> list[str]:
        try:
            return reap(self.db, self.clock.now(), actor=self.actor)
        except Exception as exc:  # the store is away: the next round tries again
            log.warning("reaping interrupted apply jobs: %s: %s", type(exc).__name__,
                        str(exc).splitlines()[0][:200] if str(exc) else "")  # fmt: skip
            return []

    def start(self) -> None:
        def loop() -> None:
            self.once()
            while not self._stop.wait(self.every):
                self.once()

        self._thread = threading.Thread(target=loop, name="plan-reaper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _problem(exc: PenguinError, ctx: ServiceContext) -> dict[str, Any]:
    import json

    from penguinctl.web.problems import for_error

    return {"problem": json.loads(for_error(exc, reveal_owner=ctx.tenant is None).body)}


def start_thread(
    ctx: ServiceContext, plan_id: str, *, force: bool, parallel: int, beats: Heartbeats | None
) -> threading.Thread:
    """The apply job, started in a thread of its own (daemon: a stop that does not wait for it
    ends it as a crash would)."""
    thread = threading.Thread(
        target=run_apply,
        args=(ctx, plan_id),
        kwargs={"force": force, "parallel": parallel, "beats": beats},
        name=f"apply-{plan_id}",
        daemon=True,
    )
    thread.start()
    return thread
