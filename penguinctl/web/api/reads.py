"""``read(fn, *args)``: run a short state-store read off the event loop, on a few threads of
its own; ``reading(web, fn)``: ``fn(connection)`` on the read engine.

The API's hottest reads (``GET`` of recorded resources) take well under a millisecond; sent
through Starlette's thread pool (40 threads) under load, they cost more in thread hand-offs and
lock contention than in SQL, and more threads than the engine's pool has connections made it
open and close overflow connections. ``READ_THREADS`` threads bound both, each with a
connection of the read engine (``state.db.read_engine``: autocommit, one round trip a
statement: on PostgreSQL the state engine's checkout ping, BEGIN and ROLLBACK were three more)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

READ_THREADS = 4  # and as many connections in the read engine (2 measured slower)
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


async def read(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_pool(), fn, *args)


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

                engine = read_engine(web.db, connections=READ_THREADS)
                web.read_db = engine
    for attempt in (1, 2):
        try:
            with engine.connect() as conn:
                return fn(conn)
        except sa.exc.DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")
