"""Backup runs and snapshots in the state store, each run also written to the audit log.

A run row is inserted as ``running`` before the remote work starts and finished (``ok`` or
``failed``) with its audit event in one transaction, so a crash leaves a visible ``running``
row rather than nothing. Audit details hold ids, counts and paths, never a secret value.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from penguinctl import clock
from penguinctl.backup.tables import runs, snapshots
from penguinctl.state.audit import record
from penguinctl.state.columns import aware


def _now() -> datetime:
    return clock.now()


def start_run(
    engine, *, tenant: str, server: str, operation: str, repository: str, actor: str
) -> int:
    with engine.begin() as conn:
        res = conn.execute(
            runs.insert().values(
                tenant=tenant,
                server=server,
                operation=operation,
                status="running",
                repository=repository,
                actor=actor,
                stats={},
                started_at=_now(),
            )
        )
        return int(res.inserted_primary_key[0])


def finish_run(
    engine,
    run_id: int,
    *,
    status: str,
    actor: str,
    tenant: str,
    resource: str,
    action: str,
    stats: dict[str, Any] | None = None,
    error: str | None = None,
    snapshot_id: str | None = None,
    new_snapshot: dict[str, Any] | None = None,
) -> None:
    """Finish the run and audit it; ``new_snapshot`` (columns of ``backup_snapshots``) is
    recorded in the same transaction."""
    from penguinctl.state.db import session_scope

    with session_scope(engine) as session:
        session.execute(
            runs.update()
            .where(runs.c.id == run_id)
            .values(
                status=status,
                stats=stats or {},
                error=error,
                snapshot_id=snapshot_id,
                finished_at=_now(),
            )
        )
        if new_snapshot is not None:
            _insert_snapshot(session, {**new_snapshot, "run_id": run_id})
        details: dict[str, Any] = {"run_id": run_id, **(stats or {})}
        if snapshot_id:
            details["snapshot"] = snapshot_id
        if error:
            details["error"] = error[:300]
        record(
            session,
            actor=actor,
            tenant=tenant,
            action=action,
            resource=resource,
            result="ok" if status == "ok" else "failed",
            details=details,
        )
        _emit(session, run_id, status, tenant, resource, action, stats or {}, error, snapshot_id)


def _emit(session, run_id, status, tenant, resource, action, stats, error, snapshot_id) -> None:
    """The run's event, if it has one: ``backup.failed`` (backup, prune, state store),
    ``backup.verified`` / ``restore.drill.failed`` (verify)."""
    from penguinctl.events.outbox import emit

    operation = {"backup.run": "backup", "backup.prune": "prune", "backup.state": "state",
                 "backup.verify": "verify"}.get(action)  # fmt: skip
    server = resource.split("/", 1)[1] if resource.startswith("server/") else ""
    subject = resource if server else "state"
    if operation == "verify" and status == "ok":
        payload = {"server": server, "snapshot": snapshot_id or "",
                   "samples": int(stats.get("samples_ok") or 0), "run_id": run_id}  # fmt: skip
        emit(session, "backup.verified", tenant=tenant, subject=subject, payload=payload)
    elif operation == "verify":
        payload = {"server": server, "run_id": run_id, "error": (error or "")[:500]}
        emit(session, "restore.drill.failed", tenant=tenant, subject=subject, payload=payload)
    elif operation is not None and status != "ok":
        payload = {"server": server, "operation": operation, "run_id": run_id,
                   "error": (error or "")[:500]}  # fmt: skip
        emit(session, "backup.failed", tenant=tenant, subject=subject, payload=payload)


def _insert_snapshot(session, values: dict[str, Any]) -> None:
    exists = session.execute(
        sa.select(snapshots.c.id).where(
            snapshots.c.server == values["server"],
            snapshots.c.snapshot_id == values["snapshot_id"],
        )
    ).first()
    if exists is None:
        session.execute(
            snapshots.insert().values(
                {
                    "status": "present",
                    "recorded_at": _now(),
                    "samples": {},
                    "stats": {},
                    "tags": [],
                    **values,
                }
            )
        )


def snapshot_values(
    *, tenant: str, server: str, repository: str, snap: dict[str, Any]
) -> dict[str, Any]:
    """Columns for a snapshot from restic's JSON (``snapshots`` entry or backup summary)."""
    sid = snap.get("id") or snap.get("snapshot_id") or ""
    taken = snap.get("time")
    return {
        "tenant": tenant,
        "server": server,
        "snapshot_id": sid,
        "short_id": snap.get("short_id") or sid[:8],
        "repository": repository,
        "taken_at": _parse_time(taken) if taken else _now(),
        "paths": list(snap.get("paths") or []),
        "tags": list(snap.get("tags") or []),
    }


def _parse_time(text: str) -> datetime:
    # restic writes RFC 3339 with nanoseconds: trim to microseconds for fromisoformat
    head, _, tail = text.partition(".")
    if tail:
        digits = "".join(c for c in tail if c.isdecimal())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def sync_snapshots(
    engine, *, tenant: str, server: str, repository: str, live: Iterable[dict[str, Any]]
) -> None:
    """Make the recorded snapshots of ``server`` in ``repository`` match restic's list:
    unknown ones are added, vanished ones marked ``forgotten``."""
    from penguinctl.state.db import session_scope

    live = list(live)
    ids = {s["id"] for s in live}
    with session_scope(engine) as session:
        for snap in live:
            _insert_snapshot(
                session,
                snapshot_values(tenant=tenant, server=server, repository=repository, snap=snap),
            )
        rows = session.execute(
            sa.select(snapshots.c.id, snapshots.c.snapshot_id).where(
                snapshots.c.server == server,
                snapshots.c.repository == repository,
                snapshots.c.status == "present",
            )
        ).all()
        gone = [r.id for r in rows if r.snapshot_id not in ids]
        if gone:
            session.execute(
                snapshots.update().where(snapshots.c.id.in_(gone)).values(status="forgotten")
            )


def list_snapshots(engine, *, server: str | None = None, all_: bool = False) -> list[dict]:
    stmt = sa.select(snapshots).order_by(snapshots.c.server, snapshots.c.taken_at.desc())
    if server is not None:
        stmt = stmt.where(snapshots.c.server == server)
    if not all_:
        stmt = stmt.where(snapshots.c.status == "present")
    with engine.connect() as conn:
        out = []
        for row in conn.execute(stmt).mappings():
            item = dict(row)
            item["taken_at"] = aware(item["taken_at"])
            item["recorded_at"] = aware(item["recorded_at"])
            out.append(item)
        return out


def find_snapshot(engine, server: str, ref: str) -> dict | None:
    """A recorded snapshot of ``server`` by id, short id or unique id prefix; ``latest``."""
    snaps = list_snapshots(engine, server=server)
    if ref == "latest":
        return snaps[0] if snaps else None
    hits = [s for s in snaps if s["snapshot_id"].startswith(ref)]
    return hits[0] if len(hits) == 1 else None


def last_success(engine, server: str) -> datetime | None:
    """When the newest successful ``backup`` run of ``server`` finished."""
    stmt = sa.select(sa.func.max(runs.c.finished_at)).where(
        runs.c.server == server, runs.c.operation == "backup", runs.c.status == "ok"
    )
    with engine.connect() as conn:
        return aware(conn.execute(stmt).scalar())


def list_runs(engine, *, server: str | None = None, limit: int = 50) -> list[dict]:
    stmt = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
    if server is not None:
        stmt = stmt.where(runs.c.server == server)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def last_drills(engine, *, tenant: str | None = None) -> list[dict]:
    """Per server, its newest restore drill (``verify`` run) and its newest *passed* one: what
    the dashboard shows as "last verified restore". ``tenant`` limits to one tenant's servers."""
    stmt = (
        sa.select(runs)
        .where(runs.c.operation == "verify", runs.c.status.in_(("ok", "failed")))
        .order_by(runs.c.id.desc())
    )
    if tenant is not None:
        stmt = stmt.where(runs.c.tenant == tenant)
    out: dict[str, dict] = {}
    with engine.connect() as conn:
        for row in conn.execute(stmt).mappings():
            item = out.setdefault(
                row["server"],
                {"server": row["server"], "tenant": row["tenant"], "last": None, "verified": None},
            )
            brief = {
                "status": row["status"],
                "at": aware(row["finished_at"]),
                "snapshot": row["snapshot_id"],
                "mail_files": (row["stats"] or {}).get("drill_files"),
                "error": row["error"],
            }
            if item["last"] is None:
                item["last"] = brief
            if item["verified"] is None and row["status"] == "ok":
                item["verified"] = brief
    return [out[k] for k in sorted(out)]
