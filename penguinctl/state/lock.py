"""One apply per tenant at a time.

PostgreSQL: a session-level advisory lock per tenant, held on a dedicated connection for the
lock's lifetime (a killed process releases it with its connection), plus a visible row in
``locks``. A row whose advisory lock can be taken is stale and is replaced.

SQLite: the ``locks`` row is the lock (its primary key is the tenant). A row held by a process on
this host that no longer runs (its pid is gone, or now names a process that started at another
time: a recycled pid) is stale and is taken over; rows from other hosts are never broken
automatically (``penguinctl state unlock ID``, see ``penguinctl.state.unlock``).

The lock connection on PostgreSQL names itself (``application_name``: ``penguinctl <operation>
lock <id>``), so ``pg_stat_activity`` and ``state unlock`` can say which session holds a lock.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from collections.abc import Callable
from contextlib import suppress

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, select

from penguinctl.errors import LockHeld
from penguinctl.procs import holder_alive, process_started
from penguinctl.state import audit
from penguinctl.state.db import session_scope
from penguinctl.state.models import LockRow


def advisory_key(tenant: str, namespace: str = "") -> int:
    """Advisory locks are database-wide: the key includes the schema holding the state store."""
    digest = hashlib.sha256(f"penguinctl:{namespace}:{tenant}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


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
    """Context manager locking all ``tenants`` (or none). Raises ``LockHeld``.

    With ``timeout``, waits for a held lock, polling every ``poll`` seconds; ``on_wait`` is
    called once with the ``LockHeld`` error when the wait begins (to tell the operator)."""

    def __init__(
        self,
        engine: Engine,
        tenants: list[str],
        *,
        operation: str,
        actor: str,
        timeout: float = 0.0,
        poll: float = 0.25,
        on_wait: Callable[[LockHeld], None] | None = None,
    ) -> None:
        self.engine = engine
        self.tenants = sorted(set(tenants))
        self.operation = operation
        self.actor = actor
        self.timeout = timeout
        self.poll = poll
        self.on_wait = on_wait
        self.lock_id = secrets.token_hex(3)
        self.host = socket.gethostname()
        self._conn: Connection | None = None
        self._namespace = ""

    @property
    def _pg(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def __enter__(self) -> TenantLock:
        deadline = time.monotonic() + self.timeout
        waiting = False
        while True:
            try:
                self._acquire()
                return self
            except LockHeld as held:
                if time.monotonic() >= deadline:
                    raise
                if not waiting and self.on_wait is not None:
                    self.on_wait(held)
                waiting = True
                time.sleep(self.poll)

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _acquire(self) -> None:
        if self._pg:
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._namespace = self._conn.execute(text("SELECT current_schema()")).scalar() or ""
            self._conn.execute(
                text("SELECT set_config('application_name', :name, false)"),
                {"name": f"penguinctl {self.operation} lock {self.lock_id}"[:63]},
            )
            for i, tenant in enumerate(self.tenants):
                holder = self._try_pg(tenant)
                if holder is not False:
                    for held in self.tenants[:i]:
                        self._conn.execute(
                            text("SELECT pg_advisory_unlock(:k)"), {"k": self._key(held)}
                        )
                    self._close_conn()
                    raise _held_error(holder, tenant)
        try:
            with session_scope(self.engine) as session:
                for tenant in self.tenants:
                    row = session.get(LockRow, tenant)
                    if row is not None:
                        if not self._pg and (
                            row.host != self.host or holder_alive(row.pid, row.pid_started)
                        ):
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
                            pid_started=process_started(os.getpid()),
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
            except SQLAlchemyError:
                # the session is gone (e.g. `state unlock --force` terminated it): so are its
                # advisory locks
                pass
            finally:
                self._close_conn()

    def _close_conn(self) -> None:
        """Give the lock connection back to the pool without its lock name."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            with suppress(SQLAlchemyError):  # a broken connection is discarded by the pool
                conn.execute(text("RESET application_name"))
        finally:
            conn.close()

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
