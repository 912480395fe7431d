"""One apply per tenant at a time.

PostgreSQL: a session-level advisory lock per tenant, held on a dedicated connection for the
lock's lifetime (a killed process releases it with its connection), plus a visible row in
``locks``. A row whose advisory lock can be taken is stale and is replaced.

SQLite: the ``locks`` row is the lock (its primary key is the tenant). A row held by a process on
this host that no longer exists is stale and is taken over; rows from other hosts are never broken
automatically (``penguinctl state unlock ID``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from penguinctl.errors import LockHeld
from penguinctl.procs import pid_alive
from penguinctl.state import audit
from penguinctl.state.db import session_scope
from penguinctl.state.models import LockRow


def advisory_key(tenant: str, namespace: str = "") -> int:
    """Advisory locks are database-wide: the key includes the schema holding the state store."""
    digest = hashlib.sha256(f"penguinctl:{namespace}:{tenant}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
    return True


def _held_error(row: LockRow | None, tenant: str) -> LockHeld:
    label = tenant or "(shared)"
    if row is None:
        return LockHeld(f"lock held by another process on tenant {label}", hint="retry shortly")
    since = row.acquired_at.strftime("%Y-%m-%dT%H:%M:%SZ") if row.acquired_at else "?"
    return LockHeld(
        f"lock held by {row.actor} (pid {row.pid} on {row.host}, {row.operation} since {since}, "
        f"lock id {row.lock_id}) on tenant {label}",
        hint=(
            "wait for it, use --lock-timeout SECONDS, or run "
            f"`penguinctl state unlock {row.lock_id}` if that process is gone"
        ),
    )


class TenantLock:
    """Context manager locking all ``tenants`` (or none). Raises ``LockHeld``."""

    def __init__(
        self,
        engine: Engine,
        tenants: list[str],
        *,
        operation: str,
        actor: str,
        timeout: float = 0.0,
        poll: float = 0.25,
    ) -> None:
        self.engine = engine
        self.tenants = sorted(set(tenants))
        self.operation = operation
        self.actor = actor
        self.timeout = timeout
        self.poll = poll
        self.lock_id = secrets.token_hex(3)
        self.host = socket.gethostname()
        self._conn: Connection | None = None
        self._namespace = ""

    @property
    def _pg(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def __enter__(self) -> TenantLock:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self._acquire()
                return self
            except LockHeld:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(self.poll)

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _acquire(self) -> None:
        if self._pg:
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._namespace = self._conn.execute(text("SELECT current_schema()")).scalar() or ""
            for i, tenant in enumerate(self.tenants):
                holder = self._try_pg(tenant)
                if holder is not False:
                    for held in self.tenants[:i]:
                        self._conn.execute(
                            text("SELECT pg_advisory_unlock(:k)"), {"k": self._key(held)}
                        )
                    self._conn.close()
                    self._conn = None
                    raise _held_error(holder, tenant)
        try:
            with session_scope(self.engine) as session:
                for tenant in self.tenants:
                    row = session.get(LockRow, tenant)
                    if row is not None:
                        if not self._pg and (row.host != self.host or pid_alive(row.pid)):
                            raise _held_error(row, tenant)
                        self._break(session, row)
                    session.add(
                        LockRow(
                            tenant=tenant,
                            lock_id=self.lock_id,
                            operation=self.operation,
                            actor=self.actor,
                            host=self.host,
                            pid=os.getpid(),
                        )
                    )
                    session.flush()
                    audit.record(
                        session,
                        actor=self.actor,
                        tenant=tenant,
                        action="lock.acquire",
                        resource=f"lock/{self.lock_id}",
                        result="ok",
                        details={"operation": self.operation},
                    )
        except IntegrityError:
            self._release_advisory()
            raise _held_error(None, self.tenants[0]) from None
        except BaseException:
            self._release_advisory()
            raise

    def _try_pg(self, tenant: str, settle: float = 1.0) -> LockRow | bool | None:
        """Take ``tenant``'s advisory lock: False when taken, else who holds it. The holder
        writes its lock row just after taking the lock and deletes it just before releasing
        it; in those few milliseconds there is no row to name, so try again for up to
        ``settle`` seconds before saying "another process"."""
        assert self._conn is not None
        deadline = time.monotonic() + settle
        while True:
            got = self._conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key(tenant)}
            ).scalar()
            if got:
                return False
            with session_scope(self.engine) as session:
                row = session.get(LockRow, tenant)
                if row is not None:
                    session.expunge(row)
                    return row
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def _key(self, tenant: str) -> int:
        return advisory_key(tenant, self._namespace)

    def _break(self, session: Session, row: LockRow) -> None:
        audit.record(
            session,
            actor=self.actor,
            tenant=row.tenant,
            action="lock.break",
            resource=f"lock/{row.lock_id}",
            result="ok",
            details={"holder": row.actor, "host": row.host, "pid": row.pid},
        )
        session.delete(row)
        session.flush()

    def _release_advisory(self) -> None:
        if self._conn is not None:
            try:
                for tenant in self.tenants:
                    self._conn.execute(
                        text("SELECT pg_advisory_unlock(:k)"), {"k": self._key(tenant)}
                    )
            finally:
                self._conn.close()
                self._conn = None

    def release(self) -> None:
        try:
            with session_scope(self.engine) as session:
                rows = session.exec(select(LockRow).where(LockRow.lock_id == self.lock_id)).all()
                for row in rows:
                    session.delete(row)
        finally:
            self._release_advisory()


def lock_status(session: Session) -> list[LockRow]:
    return list(session.exec(select(LockRow).order_by(col(LockRow.tenant))))


def unlock(session: Session, lock_id: str, *, actor: str) -> bool:
    rows = session.exec(select(LockRow).where(LockRow.lock_id == lock_id)).all()
    for row in rows:
        audit.record(
            session,
            actor=actor,
            tenant=row.tenant,
            action="unlock",
            resource=f"lock/{lock_id}",
            result="ok",
            details={"holder": row.actor, "host": row.host, "pid": row.pid},
        )
        session.delete(row)
    return bool(rows)
