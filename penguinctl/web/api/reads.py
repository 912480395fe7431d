"""``read(web, fn, *args)``: run a short state-store read for an API handler;
``reading(web, fn)``: ``fn(connection)`` on the read engine.

Where it runs depends on the store.

- **PostgreSQL**: on ``READ_THREADS`` threads of its own, off the event loop (a read waits for
  a network round trip, which the loop spends on other requests). Starlette's thread pool (40
  threads) cost more in hand-offs and lock contention than the SQL, and more threads than the
  engine had connections made it open and close overflow connections; ``READ_THREADS``
  threads bound both, each with a connection of the read engine (``state.db.read_engine``:
  autocommit, one round trip a statement instead of a checkout ping, BEGIN, the query and
  ROLLBACK).
- **SQLite**: on the event loop's thread, in place. A read there is an index search in a local
  file through the operating system's cache (tens to hundreds of microseconds), and in WAL mode
  (``state.db``) readers do not wait for writers. Handed to a thread it cost more than itself:
  the hand-off, and the read thread and the loop taking the interpreter lock from each other at
  every SQLite call (each releases it): 0.18 ms of CPU a request, where the whole request in
  place costs 0.27 ms (bench/README.md, "HTTP API"). What runs in place is bounded: one
  resource with its related rows, or a keyset page of at most ``pages.MAX_LIMIT`` rows; and
  the read engine's SQLite busy timeout is short (``SQLITE_READ_BUSY_MS``), so a file lock
  that is not granted (a WAL recovery after a crash) fails one request instead of stalling
  the loop for the state engine's 30 s."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

READ_THREADS = 4  # and as many connections in the read engine (2 measured slower)
SQLITE_READ_BUSY_MS = 1000
T = TypeVar("T")
_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        with _lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="api-read")
    return _executor


async def read(web: Any, fn: Callable[..., T], *args: Any) -> T:
    """``fn(connection, *args)``: in place on SQLite, on the read threads otherwise (see above)."""
    if web.db.dialect.name == "sqlite":
        return reading(web, lambda conn: fn(conn, *args))
    return await asyncio.get_running_loop().run_in_executor(
        _pool(), reading, web, lambda conn: fn(conn, *args)
    )


def reading(web: Any, fn: Callable[[Any], T]) -> T:
    """``fn(connection)`` on ``web``'s read engine (made on first use); once more on a fresh
    connection when the pooled one had gone away (a restarted database)."""
    import sqlalchemy as sa

    engine = getattr(web, "read_db", None)
    if engine is None:
        with _lock:
            engine = getattr(web, "read_db", None)
            if engine is None:
                from penguinctl.state.db import read_engine

                engine = read_engine(
                    web.db, connections=READ_THREADS, sqlite_busy_ms=SQLITE_READ_BUSY_MS
                )
                web.read_db = engine
    for attempt in (1, 2):
        try:
            with engine.connect() as conn:
                return fn(conn)
        except sa.exc.DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")
