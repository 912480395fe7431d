"""Scheduler leadership: exactly one ``serve`` process schedules jobs.

A lease row per election name (``control_leases``, River's design) records the holder, a
fencing token incremented on every election and an expiry in the database's own clock; every
run the leader starts carries its token. What makes the holder unique:

- **PostgreSQL**: a session-level advisory lock (key derived from the schema), held on a
  dedicated connection for as long as the process leads. When the leader dies (even SIGKILL)
  its session ends and PostgreSQL frees the lock at once, so a standby polling every
  ``retry_interval`` seconds takes over within that interval; a leader whose connection breaks
  finds out at its next renewal and stops scheduling.
- **SQLite** (one process by design): an exclusive ``flock`` on ``<state>.serve.lock`` held
  for the life of the process; a second ``serve`` on the same file refuses to start
  (``LockHeld``, exit 7) and says which process holds it.

Renewals and expiry are measured in database time (``tables.db_epoch``), never the product
clock (which tests move forward by weeks).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from penguinctl.control.tables import ControlLease, db_epoch
from penguinctl.errors import LockHeld
from penguinctl.state.lock import advisory_key

_L = ControlLease.__table__


class Leadership:
    """``acquire()`` tries to become leader (True when it is); ``renew()`` keeps it (False:
    lost); ``resign()`` gives it up. ``token`` is the fencing token while leading."""

    def __init__(
        self, engine: Any, *, holder: str, name: str = "scheduler", ttl: float = 15.0
    ) -> None:
        self.engine = engine
        self.holder = holder
        self.name = name
        self.ttl = ttl
        self.token: int | None = None
        self._conn: Any = None
        self._key: int | None = None
        self._flock: Any = None
        self.dialect = engine.dialect.name

    @property
    def leading(self) -> bool:
        return self.token is not None

    # -- the process-wide guard ------------------------------------------------------------------
    def claim_process(self) -> None:
        """SQLite: take the one-serve-per-state-file lock or raise ``LockHeld``."""
        if self.dialect != "sqlite":
            return
        database = self.engine.url.database
        if not database or database == ":memory:":
            return
        path = Path(database).expanduser().with_suffix(".serve.lock")
        handle = open(path, "a+")  # noqa: SIM115 - held for the life of the process
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            who = handle.read().strip() or "another process"
            handle.close()
            raise LockHeld(
                f"another `penguinctl serve` ({who}) already runs on the SQLite state store "
                f"{database}",
                hint="on SQLite one serve runs at a time; run several replicas on PostgreSQL",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        handle.flush()
        self._flock = handle

    # -- election ----------------------------------------------------------------------------
    def acquire(self) -> bool:
        if self.leading:
            return self.renew()
        if self.dialect == "postgresql" and not self._pg_lock():
            return False
        try:
            self.token = self._elect()
        except sa.exc.SQLAlchemyError:
            self._drop_connection()
            return False
        return True

    def _pg_lock(self) -> bool:
        try:
            if self._conn is None:
                self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                schema = self._conn.execute(sa.text("SELECT current_schema()")).scalar() or ""
                self._key = advisory_key(f"control:{self.name}", schema)
            got = self._conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}
            ).scalar()
        except sa.exc.SQLAlchemyError:
            self._drop_connection()
            return False
        return bool(got)

    def _elect(self) -> int:
        now = db_epoch(self.dialect)
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(_L.c.token).where(_L.c.name == self.name)).first()
            values = {
                "holder": self.holder,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "expires_at": now + self.ttl,
                "elected_at": now,
            }
            if row is None:
                conn.execute(sa.insert(_L).values(name=self.name, token=1, **values))
                return 1
            token = int(row.token) + 1
            conn.execute(sa.update(_L).where(_L.c.name == self.name).values(token=token, **values))
            return token

    def renew(self) -> bool:
        """Extend the lease; False (and no longer leading) when it was lost."""
        if not self.leading:
            return False
        try:
            if self._conn is not None:
                self._conn.execute(sa.text("SELECT 1"))  # the lock's session is still alive
            with self.engine.begin() as conn:
                done = conn.execute(
                    sa.update(_L)
                    .where(
                        _L.c.name == self.name,
                        _L.c.holder == self.holder,
                        _L.c.token == self.token,
                    )
                    .values(expires_at=db_epoch(self.dialect) + self.ttl)
                ).rowcount
        except sa.exc.SQLAlchemyError:
            done = 0
        if done != 1:
            self.token = None
            self._drop_connection()
            return False
        return True

    def resign(self) -> None:
        """Give leadership up now (a standby takes over at its next try)."""
        if self.leading:
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        sa.update(_L)
                        .where(_L.c.name == self.name, _L.c.holder == self.holder)
                        .values(expires_at=db_epoch(self.dialect))
                    )
            except sa.exc.SQLAlchemyError:
                pass
        self.token = None
        if self._conn is not None and self._key is not None:
            # unlock before the session goes: a closed session frees its locks only when its
            # server process has exited, which a loaded server may take a while to do
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        self._drop_connection()

    def close(self) -> None:
        self.resign()
        if self._flock is not None:
            self._flock.close()
            self._flock = None

    def _drop_connection(self) -> None:
        if self._conn is not None:
            # invalidate, not close: a pooled connection would keep the session (and the
            # advisory lock) alive; discarding it ends the session, which frees the lock
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self._conn.invalidate()
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self._conn.close()
            self._conn = None


def current(engine: Any, name: str = "scheduler") -> dict[str, Any] | None:
    """The recorded lease (holder, host, pid, token, seconds until it expires)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(_L, (_L.c.expires_at - db_epoch(engine.dialect.name)).label("left")).where(
                _L.c.name == name
            )
        ).first()
    if row is None:
        return None
    return {
        "holder": row.holder,
        "host": row.host,
        "pid": row.pid,
        "token": row.token,
        "expires_in": round(float(row.left), 1),
    }
