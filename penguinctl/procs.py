"""Process helpers shared by locks and crash-leftover cleanup.

A pid alone does not name a process for long: once it exits, the kernel hands the number to the
next process. So whoever records "process N holds this" also records when N started
(:func:`process_started`), and :func:`holder_alive` compares both: the same pid with another
start time is a recycled pid, and the holder is gone.
"""

from __future__ import annotations

import os

# Start times are read back as the OS reports them (psutil: boot time + ticks since boot), so
# two reads of one process may differ by clock-tick rounding; a recycled pid starts much later.
START_TOLERANCE = 1.0  # seconds


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if there is none."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return None


def holder_alive(pid: int, started: float | None) -> bool:
    """Whether the process recorded as (``pid``, ``started``) still runs on this host.

    False when no such pid exists, when it is a zombie (it has exited), or when the pid now
    belongs to a process that started at another time (a recycled pid). ``started`` None (a
    record from before start times were kept) trusts the pid alone. A process this user may not
    inspect counts as alive."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        now_started = proc.create_time()
    except psutil.NoSuchProcess:  # ZombieProcess included
        return False
    except psutil.AccessDenied:
        return True
    return started is None or abs(now_started - started) < START_TOLERANCE
