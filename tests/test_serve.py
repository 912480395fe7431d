"""`penguinctl serve` as real processes, driven through time by a clock file (issue 19):
SQLite runs one serve (a second refuses, exit 7) that schedules and stops cleanly on SIGTERM;
on PostgreSQL three replicas elect exactly one leader, and a SIGKILLed leader is replaced
within 30 s, its interrupted run marked interrupted and the job's next run converging."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from servekit import Serve, move_clock, probe_events, schedules, wait_for

T0 = datetime(2026, 11, 23, 9, 0, 30, tzinfo=UTC)


@pytest.fixture
def world(tmp_path, state_url):
    clock = tmp_path / "clock"
    move_clock(clock, T0)
    env = {
        "PENGUINCTL_HOME": str(tmp_path / "home"),
        "PENGUINCTL_STATE": state_url,
        "PENGUINCTL_CLOCK_FILE": str(clock),
        "PENGUINCTL_SCHEDULES": str(schedules(tmp_path / "schedules.json")),
        "PROBE_LOG": str(tmp_path / "probe.log"),
        "PROBE_HOLD": str(tmp_path / "release"),
    }
    (tmp_path / "home").mkdir()
    from penguinctl.state.db import make_engine, migrate

    engine = make_engine(state_url)
    migrate(engine)
    yield env, clock, tmp_path, engine
    engine.dispose()


def job_runs(engine) -> list:
    from penguinctl.control.tables import JobRun

    t = JobRun.__table__
    with engine.connect() as conn:
        return conn.execute(sa.select(t).where(t.c.job == "probe").order_by(t.c.id)).all()


def no_overlap(events: list[dict], killed: dict[int, float] | None = None) -> None:
    """No two probe runs were ever in progress at once (a killed run ends with its process:
    ``killed`` maps its run id to the monotonic time of the SIGKILL)."""
    events = events + [{"event": "end", "run": r, "t": t} for r, t in (killed or {}).items()]
    open_runs: set[int] = set()
    for e in sorted(events, key=lambda e: e["t"]):
        if e["event"] == "start":
            assert not open_runs, f"run {e['run']} started while {open_runs} ran"
            open_runs.add(e["run"])
        else:
            open_runs.discard(e["run"])


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
def test_sqlite_one_serve_schedules_by_the_clock_file_and_stops_cleanly(world) -> None:
    env, clock, tmp, engine = world
    (tmp / "release").touch()  # probes finish at once
    serve = Serve(env).start()
    try:
        assert serve.ready()["checks"] == {
            "state_store": "ok",
            "migrations": "ok",
            "scheduler": "leader",
        }
        second = subprocess.run(
            [sys.executable, "-m", "penguinctl", "serve", "--listen", "127.0.0.1:0"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 7
        assert "one serve runs at a time" in second.stderr and "Traceback" not in second.stderr
        assert job_runs(engine) == []
        # a week passes in the clock file: one catch-up run, not 10,080
        move_clock(clock, T0 + timedelta(days=7))
        wait_for(lambda: [r for r in job_runs(engine) if r.status == "ok"], what="a probe run")
        time.sleep(1.0)
        (run,) = job_runs(engine)
        assert run.trigger == "catch-up" and run.lease_token == 1
        move_clock(clock, T0 + timedelta(days=7, minutes=1))
        wait_for(
            lambda: len(job_runs(engine)) == 2 and job_runs(engine)[-1].status == "ok",
            what="the next minute's run",
        )
        assert job_runs(engine)[-1].trigger == "schedule"
        metrics = httpx.get(f"{serve.base}/metrics").text
        assert 'penguinctl_job_runs_total{job="probe",status="ok"} 2.0' in metrics
        assert "penguinctl_scheduler_leader 1.0" in metrics
    finally:
        code = serve.stop()
    assert code == 0, serve.log()[-2000:]
    assert {r.status for r in job_runs(engine)} == {"ok"}


@pytest.mark.slow
@pytest.mark.parametrize("state_url", ["postgres"], indirect=True)
def test_three_replicas_one_leader_and_failover_after_sigkill(world) -> None:
    env, clock, tmp, engine = world
    replicas = [Serve(env).start() for _ in range(3)]
    try:
        for r in replicas:
            r.ready()
        leaders = wait_for(
            lambda: [r for r in replicas if r.role() == "leader"] or None, what="a leader"
        )
        time.sleep(3)  # standbys have tried by now
        roles = sorted(r.role() for r in replicas)
        assert roles == ["leader", "standby", "standby"]
        (leader,) = leaders
        # a probe starts on the leader and holds (a long job), then the leader is SIGKILLed
        move_clock(clock, T0 + timedelta(minutes=1))
        started = wait_for(
            lambda: [e for e in probe_events(tmp / "probe.log") if e["event"] == "start"],
            what="the probe to start",
        )
        assert started[0]["pid"] == leader.proc.pid
        leader.kill()
        killed_at = time.monotonic()
        rest = [r for r in replicas if r is not leader]
        new = wait_for(
            lambda: [r for r in rest if r.role() == "leader"] or None,
            timeout=30,
            what="a new leader within 30 s",
        )
        took = time.monotonic() - killed_at
        assert len(new) == 1 and took < 30
        assert sorted(r.role() for r in rest) == ["leader", "standby"]
        # the interrupted run is marked so; the next tick's run converges, on the new leader
        wait_for(
            lambda: job_runs(engine)[0].status == "interrupted",
            timeout=60,
            what="the killed run marked interrupted",
        )
        # ... and its tick runs again at once on the new leader (converges), then the next one
        (tmp / "release").touch()
        wait_for(
            lambda: len(job_runs(engine)) == 2 and job_runs(engine)[1].status == "ok",
            timeout=60,
            what="the interrupted tick run again",
        )
        move_clock(clock, T0 + timedelta(minutes=2))
        wait_for(
            lambda: len(job_runs(engine)) == 3 and job_runs(engine)[2].status == "ok",
            timeout=60,
            what="the next tick's run",
        )
        runs = job_runs(engine)
        assert [r.trigger for r in runs] == ["schedule", "retry", "schedule"]
        assert runs[1].scheduled_for == runs[0].scheduled_for
        assert {runs[1].pid, runs[2].pid} == {new[0].proc.pid}
        assert runs[1].lease_token > runs[0].lease_token
        no_overlap(probe_events(tmp / "probe.log"), {runs[0].id: killed_at})
        assert all(httpx.get(f"{r.base}/healthz").status_code == 200 for r in rest)
    finally:
        codes = [r.stop() for r in replicas if r.proc.poll() is None]
    assert codes == [0, 0]
