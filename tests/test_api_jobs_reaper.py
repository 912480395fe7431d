"""The reaper of API apply jobs (``services.plans.reap``, run by every `penguinctl serve`) fails
only jobs whose serve is gone, and judges heartbeats by the database's clock. With real serves,
on SQLite and PostgreSQL:

- two tenants' applies run in two serves; one serve is SIGKILLed and a third reaps its job: the
  other tenant's job (its serve alive and heartbeating) goes on to the end and keeps its lock;
- a serve whose own clock is days ahead spares another host's job whose heartbeat is recent by
  the database's clock, and fails one whose heartbeat stopped a lease ago by that clock."""

from __future__ import annotations

import json
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from apikit import call_as, cli, tenant_spec, wait_for
from servekit import Serve, move_clock

A, B = "initech", "globex"
DOMAINS_A = 24  # long enough to be killed in (a DKIM key each)
# B's job: still applying once A's is reaped, and after a heartbeat (10 s), on a quiet machine
# too: 120 RSA-4096 keys, 0.3 s each on one core (RSA-2048 keys, 0.03 s, were made before the
# first heartbeat when nothing else ran)
DOMAINS_B = 120
BITS_B = 4096


def _env(tmp_path: Path, state_url: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {"PENGUINCTL_HOME": str(home), "PENGUINCTL_STATE": state_url,
            "PENGUINCTL_API_RATE": "100000", "PENGUINCTL_API_BURST": "100000"}  # fmt: skip


def _tenant(env: dict[str, str], tmp_path: Path, tenant: str) -> dict:
    """Apply ``tenant`` with one domain; its admin API key."""
    spec = tmp_path / f"{tenant}.yaml"
    spec.write_text(tenant_spec(tenant, 1))
    done = cli(env, "apply", "-f", str(spec), "--yes")
    assert done.returncode == 0, done.stderr
    done = cli(env, "apikeys", "create", "--tenant", tenant, "--role", "admin", "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _spec(tenant: str, domains: int, bits: int = 2048) -> str:
    """``tenant_spec`` with the domains after the first in their shortest form (the API takes
    64 KiB at most), each a DKIM key of ``bits`` to make."""
    more = (
        f"apiVersion: penguinctl/v1\nkind: Domain\nmetadata: {{name: {tenant}-{i}.example, "
        f"tenant: {tenant}}}\nspec: {{server: {tenant}-mx, dns: {tenant}-zones, "
        f"dkim: {{bits: {bits}}}}}\n"
        for i in range(1, domains)
    )
    return "---\n".join([tenant_spec(tenant, 1), *more])


def _apply(serve: Serve, key: dict, tenant: str, domains: int, bits: int = 2048) -> str:
    files = {"files": {"t.yaml": _spec(tenant, domains, bits)}}
    made = call_as(serve, key, "POST", "/plans", json=files)
    assert made.status_code == 201, made.text
    plan = made.json()
    res = call_as(serve, key, "POST", f"/plans/{plan['id']}/apply",
                json={"checksum": plan["checksum"]})  # fmt: skip
    assert res.status_code == 202, res.text
    return plan["id"]


def test_reaping_a_dead_serve_leaves_another_tenants_live_job_alone(tmp_path, state_url) -> None:
    from penguinctl.state.db import make_engine

    env = _env(tmp_path, state_url)
    key_a, key_b = _tenant(env, tmp_path, A), _tenant(env, tmp_path, B)
    db = make_engine(state_url)

    def locks() -> dict[str, int]:
        with db.connect() as conn:
            return dict(conn.execute(sa.text("SELECT tenant, pid FROM locks")).all())

    def plan_row(plan_id: str) -> Any:
        with db.connect() as conn:
            return conn.execute(
                sa.text("SELECT status, exit_code, heartbeat FROM api_plans WHERE id = :i"),
                {"i": plan_id},
            ).one()

    serve_a = Serve(env, "--no-scheduler").start()
    serve_b = Serve(env, "--no-scheduler").start()
    reaper: Serve | None = None
    try:
        serve_a.ready()
        serve_b.ready()
        plan_b = _apply(serve_b, key_b, B, DOMAINS_B, BITS_B)
        wait_for(lambda: locks().get(B) == serve_b.proc.pid, "B's job to hold B's lock")
        claimed = plan_row(plan_b).heartbeat  # the claim's, in the database's clock
        plan_a = _apply(serve_a, key_a, A, DOMAINS_A)
        wait_for(lambda: locks().get(A) == serve_a.proc.pid, "A's job to hold A's lock")
        assert plan_row(plan_a).status == "applying"
        serve_a.kill()  # SIGKILL: A's job is left applying, A's lock held by a dead pid

        reaper = Serve(env, "--no-scheduler").start()  # reaps when it starts
        reaper.ready()
        # the reaper releases a dead owner's locks first, then fails its job (a client that
        # reads "failed" can apply again at once): once A's job reads failed, A's lock is gone
        wait_for(lambda: plan_row(plan_a).status == "failed", "A's job to be failed")
        assert tuple(plan_row(plan_a))[:2] == ("failed", 130)
        assert A not in locks()
        # B's goes on, its lock still B's serve's
        assert plan_row(plan_b).status == "applying", "B's job ended before A's was reaped"
        held = locks()  # B's tenant lock, and the claims lock B's apply holds (A waited on it)
        assert held.get(B) == held.get("(claims)") == serve_b.proc.pid, held

        # B's serve beats its job (HEARTBEAT, database clock); the job finishes uninterrupted
        wait_for(lambda: plan_row(plan_b).heartbeat > claimed, "B's serve to beat", timeout=60)
        done = wait_for(lambda: (r := plan_row(plan_b)).status != "applying" and r,
                     "B's job to finish", timeout=600, every=0.3)  # fmt: skip
        assert done.status == "applied" and done.exit_code == 0, done
        assert B not in locks()
        with db.connect() as conn:
            audited = conn.execute(
                sa.text(
                    "SELECT tenant, action, resource FROM audit_events "
                    "WHERE action IN ('plan.interrupted', 'unlock')"
                )
            ).all()
        assert {(r.tenant, r.action) for r in audited} == {(A, "plan.interrupted"), (A, "unlock")}
        assert all(r.resource != f"plan/{plan_b}" for r in audited), audited
    finally:
        for serve in (serve_a, serve_b, reaper):
            if serve is not None:
                serve.stop()
        db.dispose()


def test_heartbeats_are_judged_by_the_database_clock(tmp_path, state_url) -> None:
    """Another host's two jobs: one beating (a real ``Heartbeats``, as its serve would), one
    silent for longer than the lease by the database's clock. A serve whose clock is two days
    ahead reaps the silent one only (under the reaper's own clock both would look dead)."""
    from penguinctl import clock
    from penguinctl.control.tables import db_epoch
    from penguinctl.services import plans
    from penguinctl.services.tables import ApiPlan
    from penguinctl.state.columns import aware
    from penguinctl.state.db import make_engine, migrate, session_scope

    env = _env(tmp_path, state_url)
    db = make_engine(state_url)
    migrate(db)
    now = clock.current().now()
    ahead = now + timedelta(days=2)
    env["PENGUINCTL_CLOCK_FILE"] = str(tmp_path / "clock")
    move_clock(tmp_path / "clock", ahead)
    t = ApiPlan.__table__
    with session_scope(db) as session:
        for plan_id in ("beating", "silent"):
            session.add(ApiPlan(id=plan_id, tenant=B, tenants=[B], created_by="key:x",
                                operation="apply", checksum="c", changes=1, status="applying",
                                owner_host="replica-2.invalid", owner_pid=4242,
                                owner_started=1.0, created_at=now, started_at=now))  # fmt: skip
    with db.begin() as conn:
        conn.execute(
            sa.update(t)
            .where(t.c.id == "silent")
            .values(heartbeat=db_epoch(db.dialect.name) - plans.LEASE - 5)
        )
    beats = plans.heartbeats(db, interval=0.2)
    beats.add("beating")
    beats.beat()
    beats.start()
    serve = Serve(env, "--no-scheduler").start()
    try:
        serve.ready()

        def status() -> dict[str, Any]:
            with db.connect() as conn:
                return {r.id: r for r in conn.execute(sa.select(t)).all()}

        rows = wait_for(lambda: (s := status())["silent"].status == "failed" and s, "the reap")
        assert rows["beating"].status == "applying"
        assert aware(rows["silent"].finished_at) == ahead  # the serve's clock was ahead
        problem = rows["silent"].result["problem"]
        assert "pid 4242 on replica-2.invalid" in problem["detail"], problem
        assert "sent no heartbeat for 60 s" in problem["detail"], problem
        # the beating job's heartbeat is the database's time, not the serve's (two days ahead)
        with db.connect() as conn:
            lag = conn.execute(sa.select(db_epoch(db.dialect.name) - t.c.heartbeat)
                               .where(t.c.id == "beating")).scalar_one()  # fmt: skip
        assert -1 < lag < 5, lag
    finally:
        beats.stop()
        serve.stop()
        db.dispose()


def test_a_clean_stop_lets_a_running_apply_finish(tmp_path, state_url) -> None:
    """SIGTERM while an API apply job runs: serve waits for the job (it ends applied, its lock
    released by itself) and then exits 0. A second SIGTERM while it waits stops the wait: the
    job dies with the process and the next serve's reaper fails it and frees its lock."""
    from penguinctl.state.db import make_engine

    env = _env(tmp_path, state_url)
    key_a, key_b = _tenant(env, tmp_path, A), _tenant(env, tmp_path, B)
    db = make_engine(state_url)

    def status(plan_id: str) -> tuple[str, int | None]:
        with db.connect() as conn:
            row = conn.execute(
                sa.text("SELECT status, exit_code FROM api_plans WHERE id = :i"), {"i": plan_id}
            ).one()
        return row.status, row.exit_code

    def locked(tenant: str) -> bool:
        with db.connect() as conn:
            return (
                conn.execute(
                    sa.text("SELECT count(*) FROM locks WHERE tenant = :t"), {"t": tenant}
                ).scalar_one()
                > 0
            )

    serve = Serve(env, "--no-scheduler").start()
    try:
        serve.ready()
        plan_a = _apply(serve, key_a, A, DOMAINS_A)
        wait_for(lambda: locked(A), "A's job to hold A's lock")
        log = Path(env["PENGUINCTL_HOME"]) / f"serve-{serve.port}.log"
        assert serve.stop(timeout=300) == 0, log.read_text()[-2000:]
        assert "waiting up to" in log.read_text()
        assert status(plan_a) == ("applied", 0)
        assert not locked(A)

        serve = Serve(env, "--no-scheduler").start()
        serve.ready()
        plan_b = _apply(serve, key_b, B, 40, BITS_B)  # ~12 s of keys on one core
        wait_for(lambda: locked(B), "B's job to hold B's lock")
        serve.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "waiting up to" in serve.log(), "serve to wait for B's job")
        assert serve.stop(timeout=60) == 0  # the second SIGTERM: it stops waiting
        assert status(plan_b)[0] == "applying"  # the job died with the process, unrecorded

        serve = Serve(env, "--no-scheduler").start()  # its reaper fails the job, frees the lock
        serve.ready()
        wait_for(lambda: status(plan_b)[0] == "failed", "B's job to be reaped", timeout=120)
        assert not locked(B)
    finally:
        serve.stop()
        db.dispose()
