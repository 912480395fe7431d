"""``read(fn, *args)``: run a short state-store read off the event loop, on a few threads of
its own.

The API's hottest reads (``GET`` of recorded resources) take well under a millisecond; sent
through Starlette's thread pool (40 threads) under load, they cost more in thread hand-offs and
lock contention than in SQL, and more threads than the engine's pool has connections made it
open and close overflow connections. ``READ_THREADS`` threads, fewer than the engine's pool
size, bound both."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

READ_THREADS = 4  # SQLAlchemy's QueuePool keeps 5 connections
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
