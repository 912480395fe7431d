"""``read(web, steps, *args)``: run a short state-store read for an API handler. ``steps(*args)``
is a read written once as steps (``penguinctl.state.compiled``): the same definition the CLI
runs through SQLAlchemy. Where it runs depends on the store.

- **PostgreSQL** (psycopg): on the event loop, on ``READ_CONNECTIONS`` asynchronous psycopg
  connections of its own (``AsyncReads``: autocommit, one round trip a statement). The loop
  serves other requests while a read waits for the database. Read threads, as before, cost
  more CPU than the read itself: the hand-off, and the threads and the loop taking the
  interpreter lock from each other around every driver call and socket write (0.23 ms a
  request; bench/README.md, "The HTTP API under load").
- **SQLite**: on the event loop's thread, in place. A read there is an index search in a local
  file through the operating system's cache (tens to hundreds of microseconds), and in WAL mode
  (``state.db``) readers do not wait for writers. What runs in place is bounded: one resource
  with its related rows, or a keyset page of at most ``pages.MAX_LIMIT`` rows; and the read
  engine's SQLite busy timeout is short (``SQLITE_READ_BUSY_MS``), so a file lock that is not
  granted (a WAL recovery after a crash) fails one request instead of stalling the loop for
  the state engine's 30 s.
- Another PostgreSQL driver (penguinctl ships psycopg 3 only): in a thread.

A connection that went away (a restarted database) fails one attempt: the read runs once more
on a fresh connection."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from penguinctl.state.compiled import Steps, run, run_async, run_on

READ_CONNECTIONS = 8  # PostgreSQL: connections of the API's reads, per serve process
SQLITE_READ_BUSY_MS = 1000
T = TypeVar("T")
_lock = threading.Lock()


async def read(web: Any, steps: Callable[..., Steps[T]], *args: Any) -> T:
    """The result of ``steps(*args)``, read as the module's doc says."""
    dialect = web.db.dialect
    if dialect.name == "sqlite":
        return run_on(steps(*args), _in_place(web).dbapi_connection, dialect)
    if dialect.driver == "psycopg":
        return await async_reads(web).read(lambda: steps(*args))
    return await asyncio.to_thread(reading, web, lambda conn: run(steps(*args), conn))


def _read_engine(web: Any) -> Any:
    engine = getattr(web, "read_db", None)
    if engine is None:
        with _lock:
            engine = getattr(web, "read_db", None)
            if engine is None:
                from penguinctl.state.db import read_engine

                engine = read_engine(web.db, connections=2, sqlite_busy_ms=SQLITE_READ_BUSY_MS)
                web.read_db = engine
    return engine


def _in_place(web: Any) -> Any:
    """The SQLite connection of the reads in place (checked out of the read engine's pool and
    kept): one per event loop thread. A checkout for each read cost more than a small read."""
    here = threading.get_ident()
    found = web.read_conns.get(here)
    if found is None:
        found = web.read_conns[here] = _read_engine(web).raw_connection()
    return found


def reading(web: Any, fn: Callable[[Any], T]) -> T:
    """``fn(connection)`` on ``web``'s read engine (made on first use); once more on a fresh
    connection when the pooled one had gone away (a restarted database)."""
    import sqlalchemy as sa

    engine = _read_engine(web)
    for attempt in (1, 2):
        try:
            with engine.connect() as conn:
                return fn(conn)
        except sa.exc.DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def async_reads(web: Any) -> AsyncReads:
    """``web``'s ``AsyncReads`` for the running event loop (a new loop gets new connections)."""
    loop = asyncio.get_running_loop()
    found = getattr(web, "read_pool", None)
    if found is None or found.loop is not loop:
        if found is not None:
            found.close()
        found = web.read_pool = AsyncReads(web.db, READ_CONNECTIONS, loop)
    return found


class AsyncReads:
    """Up to ``size`` psycopg ``AsyncConnection`` s in autocommit, made on first use with the
    engine's own connection arguments (so values convert as the engine's do), used by one
    read at a time. A connection whose read failed with the connection (the server went away)
    or was cancelled mid-statement is closed, not reused; any other error (a failed statement,
    a resource not found) leaves it in use. After a connection that broke, the idle ones are
    closed as well (a restarted server dropped them all) and the read runs once more on a new
    connection, as SQLAlchemy's pool does after a disconnect."""

    def __init__(self, engine: Any, size: int, loop: asyncio.AbstractEventLoop) -> None:
        self.engine = engine
        self.loop = loop
        self._slots = asyncio.Semaphore(size)
        self._idle: list[Any] = []

    async def read(self, steps: Callable[[], Steps[T]]) -> T:
        import psycopg

        for attempt in (1, 2):
            async with self._slots:
                conn = self._idle.pop() if self._idle else await self._connect()
                healthy = False
                try:
                    result = await run_async(steps(), conn, self.engine.dialect)
                    healthy = True
                    return result
                except psycopg.OperationalError:
                    if attempt == 2 or not (conn.closed or conn.broken):
                        healthy = not (conn.closed or conn.broken)
                        raise
                    self.close()  # the server went away: its other idle connections too
                except Exception:  # a statement's error, a 404: the connection stays in use
                    healthy = not (conn.closed or conn.broken)
                    raise
                finally:
                    if healthy:
                        self._idle.append(conn)
                    else:
                        conn.pgconn.finish()
        raise AssertionError("unreachable")

    async def _connect(self) -> Any:
        import psycopg

        args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        kwargs = {"connect_timeout": 5, **kwargs, "autocommit": True}
        return await psycopg.AsyncConnection.connect(*args, **kwargs)

    def close(self) -> None:
        """Close the idle connections (no event loop needed: at exit, or for a new loop)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.pgconn.finish()
