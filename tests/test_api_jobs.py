"""Apply jobs of the HTTP API converge when their `penguinctl serve` dies (SIGKILL mid-apply):
the next serve fails the plan with an "interrupted" problem (exit code 130), releases the
tenant's lock the dead process held, audits it, and a new plan of the same documents applies.
On SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from apikit import call_as, cli, tenant_spec, wait_for
from servekit import Serve

T = "initech"
DOMAINS = 24  # a DKIM key each: the apply runs for seconds, long enough to be killed in it


def test_a_killed_serve_leaves_no_job_applying(tmp_path, state_url) -> None:
    from penguinctl.state.db import make_engine

    home = tmp_path / "home"
    home.mkdir()
    env = {"PENGUINCTL_HOME": str(home), "PENGUINCTL_STATE": state_url,
           "PENGUINCTL_API_RATE": "100000", "PENGUINCTL_API_BURST": "100000"}  # fmt: skip
    spec = tmp_path / "t.yaml"
    spec.write_text(tenant_spec(T, 1))
    done = cli(env, "apply", "-f", str(spec), "--yes")
    assert done.returncode == 0, done.stderr
    done = cli(env, "apikeys", "create", "--tenant", T, "--role", "admin", "-o", "json")
    assert done.returncode == 0, done.stderr
    import json

    admin = json.loads(done.stdout)
    db = make_engine(state_url)
    serve = Serve(env, "--no-scheduler").start()
    try:
        serve.ready()
        files = {"files": {"t.yaml": tenant_spec(T, DOMAINS)}}
        plan = call_as(serve, admin, "POST", "/plans", json=files).json()
        res = call_as(serve, admin, "POST", f"/plans/{plan['id']}/apply",
                    json={"checksum": plan["checksum"]})  # fmt: skip
        assert res.status_code == 202, res.text

        def held() -> bool:
            with db.connect() as conn:
                locks = conn.execute(sa.text("SELECT pid FROM locks")).scalars().all()
            return serve.proc.pid in locks

        wait_for(held, "the apply job to hold the tenant's lock")
        status = call_as(serve, admin, "GET", f"/plans/{plan['id']}").json()["status"]
        assert status == "applying"
        serve.kill()  # SIGKILL: no clean-up of any kind
    finally:
        serve.stop()
    with db.connect() as conn:  # what the dead process left
        pids = conn.execute(sa.text("SELECT pid FROM locks")).scalars().all()
        assert pids and set(pids) == {serve.proc.pid}, pids
        left = conn.execute(sa.text("SELECT status FROM api_plans WHERE id = :i"),
                            {"i": plan["id"]}).scalar()  # fmt: skip
        assert left == "applying"

    again = Serve(env, "--no-scheduler").start()
    try:
        again.ready()

        def finished() -> dict | None:
            found = call_as(again, admin, "GET", f"/plans/{plan['id']}").json()
            return found if found["status"] != "applying" else None

        found = wait_for(finished, "the interrupted plan to be failed", timeout=60, every=0.2)
        assert found["status"] == "failed" and found["exit_code"] == 130, found
        problem = found["result"]["problem"]
        assert problem["type"] == "urn:penguinctl:problem:interrupted", problem
        assert f"pid {serve.proc.pid}" in problem["detail"] and "plan again" in problem["detail"]
        with db.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM locks")).scalar() == 0
            actions = set(
                conn.execute(
                    sa.text("SELECT action FROM audit_events WHERE resource = :r"),
                    {"r": f"plan/{plan['id']}"},
                ).scalars()
            )
        assert "plan.interrupted" in actions
        # converged: the same documents plan and apply again, to the end
        plan2 = call_as(again, admin, "POST", "/plans", json=files).json()
        res = call_as(again, admin, "POST", f"/plans/{plan2['id']}/apply",
                    json={"checksum": plan2["checksum"]})  # fmt: skip
        assert res.status_code == 202, res.text

        def applied() -> dict | None:
            found = call_as(again, admin, "GET", f"/plans/{plan2['id']}").json()
            return found if found["status"] in ("applied", "failed", "no-op") else None

        found = wait_for(applied, "the new plan to apply", timeout=300, every=0.3)
        assert found["status"] == "applied" and found["exit_code"] == 0, found
    finally:
        again.stop()
        db.dispose()


def test_reap_spares_live_jobs_and_uses_the_lease_elsewhere(migrated_engine) -> None:
    """``reap``: a job of this process (alive) stays whatever its heartbeat; one of another host
    is failed only once its heartbeat is older than the lease by the database's clock, wherever
    the reaping process's own clock stands (a year behind or ahead: it is only the finish time)."""
    import os
    import socket
    from datetime import timedelta

    from penguinctl import clock
    from penguinctl.control.tables import db_epoch
    from penguinctl.procs import process_started
    from penguinctl.services.plans import LEASE, reap
    from penguinctl.services.tables import ApiPlan
    from penguinctl.state.columns import aware
    from penguinctl.state.db import session_scope

    db = migrated_engine
    now = clock.current().now()
    me = os.getpid()
    ages = {"mine": LEASE * 10, "far-fresh": LEASE / 2, "far-stale": LEASE * 2, "far-none": None}

    def plan(plan_id: str, host: str) -> ApiPlan:
        return ApiPlan(id=plan_id, tenant="t", tenants=["t"], created_by="key:x",
                       operation="apply", checksum="c", changes=1, status="applying",
                       owner_host=host, owner_pid=me, owner_started=process_started(me),
                       created_at=now)  # fmt: skip

    with session_scope(db) as session:
        session.add(plan("mine", socket.gethostname()))
        for plan_id in ("far-fresh", "far-stale", "far-none"):
            session.add(plan(plan_id, "elsewhere.invalid"))
    t = ApiPlan.__table__
    with db.begin() as conn:
        for plan_id, age in ages.items():
            if age is not None:
                beat = db_epoch(db.dialect.name) - age
                conn.execute(sa.update(t).where(t.c.id == plan_id).values(heartbeat=beat))
    behind, ahead = now - timedelta(days=365), now + timedelta(days=365)
    assert sorted(reap(db, behind, actor="test")) == ["far-none", "far-stale"]
    assert reap(db, ahead, actor="test") == []
    with db.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(t)).all()}
    assert {k: r.status for k, r in rows.items()} == {
        "mine": "applying", "far-fresh": "applying", "far-stale": "failed", "far-none": "failed"
    }  # fmt: skip
    assert rows["far-stale"].exit_code == 130
    assert aware(rows["far-stale"].finished_at) == behind  # the reaper's clock: the record only
