"""State store on both backends: migrations, resources, runs, audit, locks."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from daemons import not_applicable
from sqlalchemy import text

from penguinctl.errors import LockHeld, NotFound, StateError
from penguinctl.resources import ResourceKey
from penguinctl.state import audit, repo
from penguinctl.state.db import (
    current_revision,
    ensure_migrated,
    head_revision,
    make_engine,
    migrate,
    session_scope,
)
from penguinctl.state.lock import TenantLock, lock_status
from penguinctl.state.models import LockRow
from penguinctl.state.unlock import inspect, unlock


def test_migrations_are_idempotent_and_versioned(state_url):
    engine = make_engine(state_url)
    try:
        assert current_revision(engine) is None
        ensure_migrated(engine)
        assert current_revision(engine) == head_revision()
        migrate(engine)
        ensure_migrated(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM resources")).scalar() == 0
            if engine.dialect.name == "postgresql":
                schema = conn.execute(text("SELECT current_schema()")).scalar()
                found = conn.execute(
                    text(
                        "SELECT table_schema FROM information_schema.tables "
                        "WHERE table_name = 'alembic_version' AND table_schema = :s"
                    ),
                    {"s": schema},
                ).all()
                assert found, "the alembic version table must live in the test schema"
    finally:
        engine.dispose()


def test_concurrent_first_use_migrates_once(state_url):
    code = (
        "import sys\nfrom penguinctl.state.db import make_engine, ensure_migrated\n"
        "ensure_migrated(make_engine(sys.argv[1]))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, state_url]) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]


def test_resources_round_trip(migrated_engine):
    key = ResourceKey("domain", "acme", "acme.example")
    with session_scope(migrated_engine) as s:
        repo.upsert_resource(s, key=key, provider="state", data={"server": "mx1"})
    with session_scope(migrated_engine) as s:
        repo.record_batch(
            s,
            upserts=[
                (key, "state", {"server": "mx2"}),
                (ResourceKey("domain", "acme", "b.example"), "state", {"server": "mx1"}),
            ],
            deletes=[],
            run_id=None,
        )
    with session_scope(migrated_engine) as s:
        rows = repo.load_resources(s, tenants=["acme"])
        assert sorted((r.name, r.data["server"]) for r in rows) == [
            ("acme.example", "mx2"),
            ("b.example", "mx1"),
        ]
        assert repo.load_resources(s, tenants=["other"]) == []
        repo.delete_resource(s, key)
    with session_scope(migrated_engine) as s:
        assert repo.get_resource(s, key) is None
        assert [r.name for r in repo.list_resources(s, kind="domain")] == ["b.example"]


def test_runs_and_audit(migrated_engine):
    with session_scope(migrated_engine) as s:
        run = repo.start_run(
            s, operation="apply", actor="a@h", host="h", pid=1, tenants=["acme"], plan_checksum="x"
        )
        audit.record(
            s,
            actor="a@h",
            tenant="acme",
            action="create",
            resource="domain/acme/a.example",
            result="ok",
            run_id=run.id,
        )
        run_id = run.id
    with session_scope(migrated_engine) as s:
        assert [r.id for r in repo.interrupted_runs(s, ["acme"])] == [run_id]
        repo.finish_run(s, run_id, status="ok", summary={"applied": {"create": 1}})
    with session_scope(migrated_engine) as s:
        assert repo.interrupted_runs(s, ["acme"]) == []
        (run,) = repo.list_runs(s, tenant="acme")
        assert run.status == "ok" and run.finished_at is not None
        (event,) = audit.list_events(s, tenant="acme")
        assert event.resource == "domain/acme/a.example" and event.run_id == run_id


def test_default_actor():
    assert audit.default_actor({"CI": "true", "GITHUB_ACTIONS": "true"}) == "ci:github"
    assert audit.default_actor({"CI": "true"}) == "ci"
    assert "@" in audit.default_actor({})


def test_second_lock_fails_fast_then_waits(migrated_engine):
    with TenantLock(migrated_engine, ["acme"], operation="apply", actor="one@h") as first:
        with pytest.raises(LockHeld) as info:
            TenantLock(
                migrated_engine, ["acme", "zeta"], operation="apply", actor="two@h"
            ).__enter__()
        assert "lock held by one@h" in str(info.value) and first.lock_id in str(info.value)
        # all-or-nothing: the other tenant was not left locked
        with TenantLock(migrated_engine, ["zeta"], operation="apply", actor="three@h"):
            pass
        threading.Timer(0.5, first.release).start()
        start = time.monotonic()
        with TenantLock(
            migrated_engine, ["acme"], operation="apply", actor="two@h", timeout=30, poll=0.05
        ):
            assert time.monotonic() - start > 0.3
    with session_scope(migrated_engine) as s:
        assert lock_status(s) == []


def test_lock_of_a_killed_process_is_recovered(migrated_engine, state_url):
    code = (
        "import sys, time\nfrom penguinctl.state.db import make_engine\n"
        "from penguinctl.state.lock import TenantLock\n"
        "lock = TenantLock(make_engine(sys.argv[1]), ['acme'], operation='apply', actor='bg@h')\n"
        "lock.__enter__()\nprint('locked', flush=True)\ntime.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, state_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeld):
            TenantLock(migrated_engine, ["acme"], operation="apply", actor="me@h").__enter__()
    finally:
        proc.kill()
        proc.wait()
    # PostgreSQL releases the advisory lock with the connection; SQLite sees the pid is gone.
    with (
        TenantLock(migrated_engine, ["acme"], operation="apply", actor="me@h", timeout=10),
        session_scope(migrated_engine) as s,
    ):
        (row,) = lock_status(s)
        assert row.actor == "me@h"
        events = audit.list_events(s, tenant="acme")
        assert any(e.action == "lock.break" for e in events)


def test_unlock_by_id(migrated_engine):
    """A lock row left by a holder on another host, pid 1: `unlock` removes it by id on both
    backends (PostgreSQL: no session holds its advisory lock; SQLite: the host cannot be
    checked, so the CLI asks first) and audits it; an unknown id is NotFound."""
    with session_scope(migrated_engine) as s:
        s.add(
            LockRow(
                tenant="acme",
                lock_id="abc123",
                operation="apply",
                actor="x@other",
                host="another-host",
                pid=1,
            )
        )
    info = inspect(migrated_engine, "abc123")
    pg = migrated_engine.dialect.name == "postgresql"
    assert (info.tenants, info.holder, info.sessions) == (["acme"], "gone" if pg else "unknown", [])
    removed = unlock(migrated_engine, "abc123", actor="me@h")
    assert removed.lock_id == "abc123" and removed.terminated == []
    with session_scope(migrated_engine) as s:
        assert lock_status(s) == []
        (event,) = [e for e in audit.list_events(s, tenant="acme") if e.action == "unlock"]
        assert event.resource == "lock/abc123" and event.details["holder"] == "x@other"
    with pytest.raises(NotFound):
        unlock(migrated_engine, "nope", actor="me@h")
    assert inspect(migrated_engine, "nope") is None
    with TenantLock(migrated_engine, ["acme"], operation="apply", actor="me@h"):
        pass


def test_unreachable_database_is_a_clean_error():
    engine = make_engine("postgresql+psycopg://nobody:secretpw@127.0.0.1:1/none")
    with pytest.raises(StateError) as info:
        ensure_migrated(engine)
    assert "unreachable" in str(info.value) and "secretpw" not in str(info.value)
    with pytest.raises(StateError):
        make_engine("mysql+nosuchdriver://x/y")


def test_state_stores_in_two_schemas_lock_independently(migrated_engine, state_url):
    if migrated_engine.dialect.name != "postgresql":
        not_applicable("schemas are a PostgreSQL concept")
    from conftest import PG_BASE, _pg_admin

    other_schema = f"pt_other_{int(time.time() * 1000) % 10**9}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {other_schema}"))
    other = make_engine(f"{PG_BASE}?options=-csearch_path%3D{other_schema}")
    try:
        migrate(other)
        with (
            TenantLock(migrated_engine, ["acme"], operation="apply", actor="a@h"),
            TenantLock(other, ["acme"], operation="apply", actor="b@h"),
        ):
            pass
    finally:
        other.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {other_schema} CASCADE"))
        admin.dispose()
