"""``state unlock ID``: remove a lock only when its holder is gone, or when told to.

SQLite: the ``locks`` row is the lock. Its holder recorded its host, pid and the pid's start
time. On that host, a holder that still runs (same pid, same start time) is *alive*: unlocking
it is refused unless forced, since a second apply would then run beside the first. A pid that is
gone, a zombie, or now names a process that started later (a recycled pid) means the holder is
*gone*, and the row is removed. From another host nobody can tell (*unknown*): the CLI asks.

PostgreSQL: the lock is a session-level advisory lock; the row only names its holder. While a
session holds the advisory lock, deleting the row would change nothing (the lock still blocks),
so unlocking is refused with the session's pid, application name, client and start; forced, the
session is terminated (``pg_terminate_backend``), which releases its locks, and the row is
removed. No session holding it means the holder is gone: the row is stale and is removed.

Forcing never stops the holder process itself: the operator must.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from penguinctl.errors import LockHeld, NotFound, StateError
from penguinctl.procs import holder_alive
from penguinctl.state import audit
from penguinctl.state.db import session_scope
from penguinctl.state.lock import advisory_key
from penguinctl.state.models import LockRow

Holder = Literal["alive", "gone", "unknown"]
TERMINATE_WAIT = 10.0  # seconds for a terminated session's locks to go

_HOLDERS = text(
    "SELECT a.pid, a.application_name, host(a.client_addr) AS client, a.backend_start, "
    "a.usename FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.classid::bigint = :hi AND l.objid::bigint = :lo"
)


def _iso(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ") if ts else "?"


@dataclass(frozen=True)
class PgSession:
    """A PostgreSQL backend holding one of the lock's advisory locks."""

    pid: int
    application: str
    client: str | None
    since: datetime | None
    user: str | None

    def describe(self) -> str:
        app = f"'{self.application}'" if self.application else "no application name"
        where = f"from {self.client}" if self.client else "over a local socket"
        return f"PostgreSQL session {self.pid} ({app}, {where}, since {_iso(self.since)})"

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "application": self.application,
            "client": self.client,
            "since": _iso(self.since),
            "user": self.user,
        }


@dataclass
class LockInfo:
    """A lock as ``state unlock`` sees it: the holder it recorded and whether that holder lives."""

    lock_id: str
    tenants: list[str]
    actor: str
    operation: str
    host: str
    pid: int
    acquired_at: datetime | None
    backend: str  # sqlite | postgresql
    holder: Holder
    sessions: list[PgSession] = field(default_factory=list)
    terminated: list[int] = field(default_factory=list)

    @property
    def live(self) -> bool:
        """The lock still protects a running apply (unlocking it needs force)."""
        return self.holder == "alive"

    @property
    def who(self) -> str:
        tenants = ", ".join(t or "(shared)" for t in self.tenants)
        return (
            f"{self.actor} (pid {self.pid} on {self.host}, {self.operation} since "
            f"{_iso(self.acquired_at)}, tenant {tenants})"
        )

    def refusal(self) -> LockHeld:
        if self.sessions:
            return LockHeld(
                f"lock {self.lock_id} is held by {self.sessions[0].describe()} for {self.who}; "
                "removing its row would not release it",
                hint=f"stop that process, or `penguinctl state unlock {self.lock_id} --force` "
                "to terminate the session (pg_terminate_backend)",
            )
        return LockHeld(
            f"lock {self.lock_id} is held by a live process: {self.who}",
            hint=f"wait for it or stop it; `penguinctl state unlock {self.lock_id} --force` "
            "removes the lock anyway, and another apply could then run beside it",
        )

    def caution(self) -> str | None:
        """Why unlocking deserves a confirmation (None: the holder is gone)."""
        if self.sessions:
            pids = ", ".join(str(s.pid) for s in self.sessions)
            return (
                f"this terminates PostgreSQL session {pids}, which holds lock {self.lock_id} of "
                f"{self.who}; the process itself keeps running until you stop it"
            )
        if self.holder == "alive":
            return (
                f"pid {self.pid} on {self.host} still runs and holds lock {self.lock_id}; "
                "another apply could then run beside it"
            )
        if self.holder == "unknown":
            return (
                f"lock {self.lock_id} was taken on host {self.host} by pid {self.pid}, and "
                "penguinctl cannot check from here whether that process still runs"
            )
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "unlocked": self.lock_id,
            "tenants": self.tenants,
            "holder": {
                "actor": self.actor,
                "host": self.host,
                "pid": self.pid,
                "operation": self.operation,
                "since": _iso(self.acquired_at),
                "state": self.holder,
            },
            "terminated_sessions": self.terminated,
        }


def _namespace(conn: Connection) -> str:
    return conn.execute(text("SELECT current_schema()")).scalar() or ""


def pg_holders(conn: Connection, tenants: list[str]) -> list[PgSession]:
    """The sessions holding the advisory locks of ``tenants`` in this state store."""
    namespace = _namespace(conn)
    found: dict[int, PgSession] = {}
    for tenant in tenants:
        key = advisory_key(tenant, namespace) & 0xFFFFFFFFFFFFFFFF
        for row in conn.execute(_HOLDERS, {"hi": key >> 32, "lo": key & 0xFFFFFFFF}):
            found[row.pid] = PgSession(
                row.pid, row.application_name or "", row.client, row.backend_start, row.usename
            )
    return [found[pid] for pid in sorted(found)]


def inspect(engine: Engine, lock_id: str) -> LockInfo | None:
    """The lock ``lock_id`` and its holder's state, or None when there is no such lock."""
    with session_scope(engine) as session:
        rows = list(session.exec(select(LockRow).where(LockRow.lock_id == lock_id)))
        for row in rows:
            session.expunge(row)
    if not rows:
        return None
    first = rows[0]
    pg = engine.dialect.name == "postgresql"
    sessions: list[PgSession] = []
    if pg:
        with engine.connect() as conn:
            sessions = pg_holders(conn, [r.tenant for r in rows])
        holder: Holder = "alive" if sessions else "gone"
    elif first.host != socket.gethostname():
        holder = "unknown"
    else:
        holder = "alive" if holder_alive(first.pid, first.pid_started) else "gone"
    return LockInfo(
        lock_id=lock_id,
        tenants=sorted(r.tenant for r in rows),
        actor=first.actor,
        operation=first.operation,
        host=first.host,
        pid=first.pid,
        acquired_at=first.acquired_at,
        backend=engine.dialect.name,
        holder=holder,
        sessions=sessions,
    )


def _terminate(engine: Engine, info: LockInfo) -> None:
    with engine.connect() as conn:
        for s in info.sessions:
            try:
                done = conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": s.pid}).scalar()
            except DBAPIError as exc:
                raise StateError(
                    f"cannot terminate {s.describe()}: {str(exc.orig).strip().splitlines()[0]}",
                    hint=f"ask a database superuser to run SELECT pg_terminate_backend({s.pid})",
                ) from None
            if done:
                info.terminated.append(s.pid)
        conn.rollback()
        deadline = time.monotonic() + TERMINATE_WAIT
        while pg_holders(conn, info.tenants):
            conn.rollback()
            if time.monotonic() >= deadline:
                raise StateError(
                    f"lock {info.lock_id} is still held {TERMINATE_WAIT:.0f}s after terminating "
                    "its session",
                    hint="see `penguinctl state lock-status` and pg_stat_activity",
                )
            time.sleep(0.05)


def unlock(engine: Engine, lock_id: str, *, actor: str, force: bool = False) -> LockInfo:
    """Remove lock ``lock_id``; raises ``NotFound``, or ``LockHeld`` when its holder is alive
    and not ``force`` (forced on PostgreSQL: its session is terminated first). Audited."""
    info = inspect(engine, lock_id)
    if info is None:
        raise NotFound(f"no lock with id {lock_id}", hint="see `penguinctl state lock-status`")
    if info.live and not force:
        raise info.refusal()
    if info.sessions:
        _terminate(engine, info)
    with session_scope(engine) as session:
        for row in session.exec(select(LockRow).where(LockRow.lock_id == lock_id)):
            audit.record(
                session,
                actor=actor,
                tenant=row.tenant,
                action="unlock",
                resource=f"lock/{lock_id}",
                result="ok",
                details={
                    "holder": row.actor,
                    "host": row.host,
                    "pid": row.pid,
                    "holder_state": info.holder,
                    "forced": force,
                    "terminated_sessions": info.terminated,
                },
            )
            session.delete(row)
    return info
