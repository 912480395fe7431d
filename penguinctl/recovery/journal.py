"""The step journal of ``server rebuild`` (table ``server_rebuilds``).

``open_or_resume`` returns the running rebuild of a server (a re-run after a crash resumes it)
or inserts a new one; the partial unique index makes two concurrent starts end with one row.
``done(step)`` records a finished step and its audit event (``server.rebuild.<step>``) in one
transaction, so the journal never claims a step the audit log does not show.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl import clock
from penguinctl.recovery.tables import ServerRebuild
from penguinctl.state.audit import record_many
from penguinctl.state.columns import aware

T = ServerRebuild.__table__


def running(db: Any, server: str) -> dict[str, Any] | None:
    with db.connect() as conn:
        row = (
            conn.execute(sa.select(T).where(T.c.server == server, T.c.status == "running"))
            .mappings()
            .first()
        )
    return _row(row) if row else None


def _row(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["started_at"] = aware(out["started_at"])
    out["finished_at"] = aware(out["finished_at"])
    out["steps"] = dict(out["steps"] or {})
    return out


def start(
    db: Any, *, tenant: str, server: str, old: dict, replacement: dict, actor: str
) -> dict[str, Any]:
    """A new running rebuild (audited ``server.rebuild.start``)."""
    now = clock.now()
    with db.begin() as conn:
        res = conn.execute(
            T.insert().values(
                tenant=tenant,
                server=server,
                status="running",
                old=old,
                replacement=replacement,
                steps={},
                actor=actor,
                started_at=now,
            )
        )
        rid = int(res.inserted_primary_key[0])
        _audit(conn, actor, tenant, server, "start", {"rebuild": rid, **_public(replacement)})
    found = running(db, server)
    assert found is not None
    return found


def _public(replacement: dict) -> dict:
    return {
        k: v
        for k, v in replacement.items()
        if k in ("provider", "address", "ssh_port", "service_id", "main_ip", "srvrname")
    }


def _audit(conn: Any, actor: str, tenant: str, server: str, step: str, details: dict) -> None:
    record_many(
        conn,
        [
            {
                "actor": actor,
                "tenant": tenant,
                "action": f"server.rebuild.{step}",
                "resource": f"server/{server}",
                "result": "ok",
                "details": details,
            }
        ],
    )


def done(db: Any, row: dict[str, Any], step: str, detail: dict[str, Any], **values: Any) -> None:
    """Record ``step`` as finished (with ``values`` for other columns: replacement,
    snapshot_id)."""
    steps = dict(row["steps"])
    steps[step] = {"at": clock.now().isoformat(timespec="seconds"), **detail}
    with db.begin() as conn:
        conn.execute(T.update().where(T.c.id == row["id"]).values(steps=steps, **values))
        _audit(
            conn, row["actor"], row["tenant"], row["server"], step, {"rebuild": row["id"], **detail}
        )
    row["steps"] = steps
    row.update(values)


def finish(db: Any, row: dict[str, Any], status: str = "done") -> datetime:
    now = clock.now()
    with db.begin() as conn:
        conn.execute(T.update().where(T.c.id == row["id"]).values(status=status, finished_at=now))
    row["status"], row["finished_at"] = status, now
    return now


def history(db: Any, server: str | None = None) -> list[dict[str, Any]]:
    stmt = sa.select(T).order_by(T.c.id.desc())
    if server is not None:
        stmt = stmt.where(T.c.server == server)
    with db.connect() as conn:
        return [_row(r) for r in conn.execute(stmt).mappings()]
