"""Which series the scheduler runs and when each is due next.

A series is (job, tenant, target). The desired set comes from ``config/schedules.yaml`` and the
recorded specs: platform jobs once; tenant jobs once per tenant with a recorded spec, at the
schedule its ``Schedule`` document sets (else the default); ``backup`` once per BackupPolicy
used by the tenant's servers, at the policy's schedule. ``sync`` brings ``job_series`` in line
with it (O(tenants + servers), never O(domains)); ``due`` reads only rows whose ``next_run_at``
has passed (an index range).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl.control.tables import JobPause, JobSeries, SpecDocument
from penguinctl.spec.cron import latest_at, next_after

_S = JobSeries.__table__
_P = JobPause.__table__
_D = SpecDocument.__table__


@dataclass(frozen=True)
class Wanted:
    job: str
    tenant: str
    target: str
    schedule: str
    source: str
    enabled: bool = True


def wanted_series(engine: Any, config: Any) -> list[Wanted]:
    """The series the configuration and the recorded specs ask for."""
    out: list[Wanted] = []
    for name, job in config.jobs.items():
        if job.scope == "platform" and job.enabled:
            out.append(Wanted(name, "", "", job.schedule, "config"))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(_D.c.tenant, _D.c.kind, _D.c.name, _D.c.document).where(
                _D.c.kind.in_(("Tenant", "Schedule", "Server", "BackupPolicy"))
            )
        ).all()
    tenants = sorted({r.tenant for r in rows if r.tenant})
    overrides: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
    for r in rows:
        if r.kind == "Schedule":
            for job, setting in (r.document.get("spec", {}).get("jobs") or {}).items():
                overrides[(r.tenant, job)] = (setting, f"Schedule/{r.name}")
    policies = {
        (r.tenant, r.name): r.document.get("spec", {}) for r in rows if r.kind == "BackupPolicy"
    }
    for tenant in tenants:
        for name, job in config.jobs.items():
            if job.scope != "tenant" or config.job(name).per_policy:
                continue
            setting, source = overrides.get((tenant, name), ({}, "config"))
            enabled = job.enabled and setting.get("enabled", True)
            out.append(
                Wanted(name, tenant, "", setting.get("schedule") or job.schedule, source, enabled)
            )
    backup = config.jobs.get("backup")
    if backup is not None and backup.enabled:
        used: set[tuple[str, str]] = set()
        for r in rows:
            if r.kind == "Server" and (policy := r.document.get("spec", {}).get("backup")):
                used.add((r.tenant, policy))
        for tenant, policy in sorted(used):
            spec = policies.get((tenant, policy)) or policies.get(("", policy))
            if spec and spec.get("schedule"):
                out.append(
                    Wanted("backup", tenant, policy, spec["schedule"], f"BackupPolicy/{policy}")
                )
    return out


def sync(engine: Any, config: Any, now: datetime) -> dict[str, int]:
    """Create, update and retire ``job_series`` rows to match ``wanted_series``."""
    wanted = {(w.job, w.tenant, w.target): w for w in wanted_series(engine, config)}
    counts = {"added": 0, "changed": 0, "retired": 0}
    with engine.begin() as conn:
        rows = {(r.job, r.tenant, r.target): r for r in conn.execute(sa.select(_S)).all()}
        for key, w in wanted.items():
            row = rows.get(key)
            active = w.enabled
            if row is None:
                conn.execute(
                    sa.insert(_S).values(
                        job=w.job,
                        tenant=w.tenant,
                        target=w.target,
                        schedule=w.schedule,
                        source=w.source,
                        next_run_at=next_after(w.schedule, now),
                        last_scheduled_for=None,
                        paused=False,
                        failures=0,
                        active=active,
                        updated_at=now,
                    )
                )
                counts["added"] += 1
            elif (row.schedule, row.source, row.active) != (w.schedule, w.source, active):
                values: dict[str, Any] = {
                    "schedule": w.schedule,
                    "source": w.source,
                    "active": active,
                    "updated_at": now,
                }
                if row.schedule != w.schedule or not row.active:
                    values["next_run_at"] = next_after(w.schedule, now)
                conn.execute(sa.update(_S).where(_S.c.id == row.id).values(**values))
                counts["changed"] += 1
        retired = [r.id for k, r in rows.items() if k not in wanted and r.active]
        if retired:
            conn.execute(sa.update(_S).where(_S.c.id.in_(retired)).values(active=False))
            counts["retired"] = len(retired)
    return counts


def paused(conn: Any) -> set[tuple[str, str]]:
    """(job, tenant) pairs paused; tenant ``*`` pauses the job everywhere."""
    return {(r.job, r.tenant) for r in conn.execute(sa.select(_P.c.job, _P.c.tenant))}


def is_paused(pauses: set[tuple[str, str]], job: str, tenant: str) -> bool:
    return (job, "*") in pauses or (job, tenant) in pauses


def due(engine: Any, now: datetime, limit: int = 200) -> list[Any]:
    """Active, unpaused series whose next run is due, earliest first."""
    with engine.connect() as conn:
        pauses = paused(conn)
        rows = conn.execute(
            sa.select(_S)
            .where(_S.c.active.is_(True), _S.c.next_run_at <= now)
            .order_by(_S.c.next_run_at)
            .limit(limit)
        ).all()
    return [r for r in rows if not is_paused(pauses, r.job, r.tenant)]


def next_due(engine: Any) -> datetime | None:
    """The earliest ``next_run_at`` of any active series."""
    from penguinctl.state.columns import aware

    with engine.connect() as conn:
        value = conn.execute(
            sa.select(sa.func.min(_S.c.next_run_at)).where(_S.c.active.is_(True))
        ).scalar()
    return aware(value) if value is not None else None


def claim_tick(
    engine: Any, row: Any, now: datetime, *, job: str, owner: str, lease_token: int | None
) -> tuple[int, datetime, str] | None:
    """Start the series' run for the latest tick due (missed ticks collapse into one run) in
    one transaction with moving ``next_run_at`` past ``now``: a tick is never claimed without
    its running row (a leader killed in between loses nothing). Returns (run id, tick,
    trigger); None when the series is running elsewhere (it stays due) or the tick already
    ran (the series moves on)."""
    from penguinctl.control.runs import _insert_running, series_running
    from penguinctl.state.columns import aware

    tick = latest_at(row.schedule, now)
    scheduled = aware(row.next_run_at)
    trigger = "schedule" if scheduled is not None and tick <= scheduled else "catch-up"
    if row.last_scheduled_for is not None and aware(row.last_scheduled_for) == tick:
        trigger = "retry"  # the tick's run was interrupted: run it again
    move = (
        sa.update(_S)
        .where(_S.c.id == row.id)
        .values(next_run_at=next_after(row.schedule, tick), last_scheduled_for=tick, updated_at=now)
    )
    try:
        with engine.begin() as conn:
            run_id = _insert_running(
                conn,
                job,
                tenant=row.tenant,
                target=row.target,
                trigger=trigger,
                scheduled_for=tick,
                started=now,
                owner=owner,
                lease_token=lease_token,
            )
            conn.execute(move)
    except sa.exc.IntegrityError:
        if series_running(engine, row.job, row.tenant, row.target):
            return None  # a manual run of the series is in progress: still due after it
        with engine.begin() as conn:
            conn.execute(move)  # this tick already has its run
        return None
    return run_id, tick, trigger


def record_outcome(engine: Any, row: Any, status: str, finished: datetime, backoff: Any) -> None:
    """Reset or count failures; a failing series waits ``backoff.after(failures)``."""
    with engine.begin() as conn:
        current = conn.execute(sa.select(_S).where(_S.c.id == row.id)).first()
        if current is None:
            return
        if status in ("ok", "skipped"):
            conn.execute(sa.update(_S).where(_S.c.id == row.id).values(failures=0))
            return
        failures = current.failures + 1
        from penguinctl.state.columns import aware

        wait_until = finished + backoff.after(failures)
        nxt = aware(current.next_run_at)
        values: dict[str, Any] = {"failures": failures}
        if nxt is None or nxt < wait_until:
            values["next_run_at"] = wait_until
        conn.execute(sa.update(_S).where(_S.c.id == row.id).values(**values))


def set_pause(
    engine: Any, job: str, tenant: str | None, *, paused_: bool, actor: str, now: datetime
) -> None:
    key = tenant if tenant is not None else "*"
    with engine.begin() as conn:
        conn.execute(sa.delete(_P).where(_P.c.job == job, _P.c.tenant == key))
        if paused_:
            conn.execute(sa.insert(_P).values(job=job, tenant=key, actor=actor, paused_at=now))
        from penguinctl.state import audit

        audit.record_many(
            conn,
            [
                {
                    "actor": actor,
                    "tenant": tenant or "",
                    "action": "job.pause" if paused_ else "job.resume",
                    "resource": f"job/{job}",
                    "result": "ok",
                    "details": {"scope": key},
                }
            ],
        )


def listing(engine: Any) -> list[dict[str, Any]]:
    """Every series with its schedule, pause, last run and next run."""
    from penguinctl.control.runs import _R
    from penguinctl.state.columns import aware

    with engine.connect() as conn:
        pauses = paused(conn)
        rows = conn.execute(sa.select(_S).order_by(_S.c.job, _S.c.tenant, _S.c.target)).all()
        last_ids = (
            conn.execute(
                sa.select(sa.func.max(_R.c.id)).group_by(_R.c.job, _R.c.tenant, _R.c.target)
            )
            .scalars()
            .all()
        )
        last = {
            (r.job, r.tenant, r.target): r
            for r in conn.execute(sa.select(_R).where(_R.c.id.in_(last_ids or [-1])))
        }
    out = []
    for r in rows:
        run = last.get((r.job, r.tenant, r.target))
        out.append(
            {
                "job": r.job,
                "tenant": r.tenant,
                "target": r.target,
                "schedule": r.schedule,
                "source": r.source,
                "active": r.active,
                "paused": is_paused(pauses, r.job, r.tenant),
                "next_run": aware(r.next_run_at).isoformat() if r.next_run_at else None,
                "failures": r.failures,
                "last_run": None
                if run is None
                else {
                    "id": run.id,
                    "status": run.status,
                    "started": aware(run.started_at).isoformat(),
                    "finished": aware(run.finished_at).isoformat() if run.finished_at else None,
                },
            }
        )
    return out


def series_of(engine: Any, job: str, tenant: str) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(_S).where(_S.c.job == job, _S.c.tenant == tenant, _S.c.active.is_(True))
        ).all()
