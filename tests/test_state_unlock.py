"""`penguinctl state unlock ID` on both backends: a live holder is refused (SQLite: its pid and
start time on this host; PostgreSQL: the session holding the advisory lock), --force asks and
then removes it (terminating the session on PostgreSQL); a gone holder or a recycled pid is
unlocked without force."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from clitools import run_inprocess
from daemons import not_applicable

from penguinctl.errors import LockHeld
from penguinctl.procs import process_started
from penguinctl.state import audit
from penguinctl.state.db import session_scope
from penguinctl.state.lock import TenantLock, lock_status
from penguinctl.state.models import LockRow

HOLDER = (
    "import sys, time\nfrom penguinctl.state.db import make_engine\n"
    "from penguinctl.state.lock import TenantLock\n"
    "lock = TenantLock(make_engine(sys.argv[1]), ['acme'], operation='apply', actor='bg@h')\n"
    "lock.__enter__()\nprint(lock.lock_id, flush=True)\ntime.sleep(600)\n"
)


@pytest.fixture
def holder(state_url):
    """A live process holding tenant acme's lock; yields (process, lock id)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, state_url], stdout=subprocess.PIPE, text=True
    )
    try:
        lock_id = proc.stdout.readline().strip()
        assert lock_id, "the holder did not take the lock"
        yield proc, lock_id
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


@pytest.fixture
def cli(capsys, state_url, tmp_path, monkeypatch):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    return lambda *args: run_inprocess(capsys, "--state", state_url, *args)


def _blocked(engine) -> bool:
    try:
        TenantLock(engine, ["acme"], operation="apply", actor="probe@h").__enter__().release()
    except LockHeld:
        return True
    return False


def test_a_live_holder_is_refused_then_forced(migrated_engine, holder, cli):
    proc, lock_id = holder
    pg = migrated_engine.dialect.name == "postgresql"
    res = cli("state", "unlock", lock_id)
    assert res.code == 7, res.err
    assert len(res.err.strip().splitlines()) == 1, res.err
    if pg:
        assert f"lock {lock_id} is held by PostgreSQL session " in res.err
        assert f"'penguinctl apply lock {lock_id}'" in res.err
        assert "would not release it" in res.err and "--force" in res.err
    else:
        assert f"lock {lock_id} is held by a live process: bg@h (pid {proc.pid} on " in res.err
    assert _blocked(migrated_engine), "the refused unlock must leave the lock in place"
    with session_scope(migrated_engine) as s:
        assert [r.lock_id for r in lock_status(s)] == [lock_id]

    # --force asks; without a terminal and without --yes it does nothing
    res = cli("state", "unlock", lock_id, "--force")
    assert res.code == 2 and "not unlocked: " in res.err and "--yes" in res.err, res.err
    assert _blocked(migrated_engine)

    res = cli("state", "unlock", lock_id, "--force", "--yes", "-o", "json")
    assert res.code == 0, res.err
    data = res.json()
    assert data["unlocked"] == lock_id and data["tenants"] == ["acme"]
    assert data["holder"]["pid"] == proc.pid and data["holder"]["state"] == "alive"
    assert len(data["terminated_sessions"]) == (1 if pg else 0)
    assert not _blocked(migrated_engine)
    with session_scope(migrated_engine) as s:
        assert lock_status(s) == []
        (event,) = [e for e in audit.list_events(s, tenant="acme") if e.action == "unlock"]
        assert event.details["forced"] is True and event.details["holder_state"] == "alive"


def test_a_gone_holder_is_unlocked_without_force(migrated_engine, state_url, cli):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, state_url], stdout=subprocess.PIPE, text=True
    )
    lock_id = proc.stdout.readline().strip()
    proc.kill()
    proc.wait()
    proc.stdout.close()
    res = cli("state", "unlock", lock_id)
    assert res.code == 0, res.err
    assert f"Lock {lock_id} removed: its holder bg@h (pid {proc.pid} on " in res.out
    assert "is gone." in res.out
    assert cli("state", "unlock", lock_id).code == 2  # no such lock any more


def test_a_recycled_pid_is_not_the_holder(migrated_engine, cli):
    """SQLite: the row names this host and a pid that runs (ours), but a process that started
    at another time held it: the holder is gone, unlock and the next lock both take it over."""
    if migrated_engine.dialect.name != "sqlite":
        not_applicable("PostgreSQL knows its holder by session, not by pid")
    me, started = os.getpid(), process_started(os.getpid())
    assert started is not None
    for lock_id, when in (("recycl", started - 3600), ("mine01", started)):
        with session_scope(migrated_engine) as s:
            s.add(
                LockRow(
                    tenant="acme",
                    lock_id=lock_id,
                    operation="apply",
                    actor="old@h",
                    host=socket.gethostname(),
                    pid=me,
                    pid_started=when,
                )
            )
        if lock_id == "recycl":
            res = cli("state", "unlock", lock_id)
            assert res.code == 0 and "is gone." in res.out, res.err
        else:  # the pid and its start time match: alive
            res = cli("state", "unlock", lock_id)
            assert res.code == 7 and "held by a live process" in res.err, res.err
            assert _blocked(migrated_engine)
            with session_scope(migrated_engine) as s:
                s.get(LockRow, "acme").pid_started = started - 3600
            # the next lock takes a recycled pid's row over by itself
            assert not _blocked(migrated_engine)


def test_another_hosts_lock_asks_first(migrated_engine, cli):
    with session_scope(migrated_engine) as s:
        s.add(
            LockRow(
                tenant="acme",
                lock_id="far001",
                operation="apply",
                actor="x@far",
                host="far-away-host",
                pid=4242,
            )
        )
    res = cli("state", "unlock", "far001")
    if migrated_engine.dialect.name == "postgresql":  # no session holds it: stale
        assert res.code == 0 and "is gone." in res.out, res.err
        return
    assert res.code == 2, res.err
    assert "cannot check from here whether that process still runs" in res.err
    res = cli("state", "unlock", "far001", "--yes")
    assert res.code == 0 and "ran on another host (not checked)" in res.out, res.err
    assert "Make sure pid 4242 on far-away-host is stopped." in res.out
