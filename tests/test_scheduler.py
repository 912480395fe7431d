"""The scheduler (issue 19 §2): series from config/schedules.yaml and the recorded specs, due
runs from the product clock, missed ticks caught up once, one running run per series, back-off,
pause/resume, timeouts, interrupted runs; `jobs` commands. In-process on both state backends,
with a ManualClock (weeks pass without sleeping)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from clitools import agency_spec, run_inprocess

from penguinctl.clock import ManualClock
from penguinctl.control import registry, runs, series
from penguinctl.control.config import JobConfig, Schedules, load_schedules
from penguinctl.control.leader import Leadership
from penguinctl.control.scheduler import Scheduler
from penguinctl.control.tables import JobRun

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday
CALLS: list[tuple[str, str, datetime]] = []
BEHAVIOUR: dict[str, str] = {}
RELEASE = threading.Event()


def probe(ctx) -> dict:
    """A job for exercising the scheduler itself: records its call; fails or hangs on demand."""
    CALLS.append((ctx.tenant, ctx.job.name, ctx.scheduled_for))
    mode = BEHAVIOUR.get(ctx.tenant, "ok")
    if mode == "fail":
        raise registry.JobFailed("probe failed on purpose", summary={"calls": len(CALLS)})
    if mode == "hang":
        while not ctx.cancel.wait(0.02):
            pass
    if mode == "wait":  # until the test lets it go (runs no scheduler cancels)
        RELEASE.wait(60)
    return {"calls": len(CALLS)}


@pytest.fixture
def app(tmp_path, monkeypatch, state_url):
    from penguinctl.cli.context import AppContext
    from penguinctl.settings import load_settings

    env = {"PENGUINCTL_HOME": str(tmp_path / "home"), "PENGUINCTL_STATE": state_url}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    ctx = AppContext(settings=load_settings(env), env=env)
    ctx._clock = ManualClock(T0)
    CALLS.clear()
    BEHAVIOUR.clear()
    monkeypatch.setitem(
        registry.JOBS, "probe", registry.Job("probe", "tenant", "test probe", f"{__name__}:probe")
    )
    yield ctx
    ctx.close()


def config(schedule: str = "0 * * * *", timeout: str = "1h", **extra) -> Schedules:
    return Schedules(
        apiVersion="penguinctl/v1",
        kind="Schedules",
        jobs={"probe": JobConfig(scope="tenant", schedule=schedule, timeout=timeout)},
        **extra,
    )


def record_tenants(app, *tenants: str) -> None:
    from penguinctl.control import specs
    from penguinctl.spec import load_specs

    for t in tenants:
        path = app.settings.data_dir / f"{t}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(agency_spec(1, tenant=t).replace("client00000", f"{t}-client"))
        loaded = load_specs([path])
        specs.record(app.db, loaded, tenants=[t], run_id=None, actor="test")


def make_scheduler(app, cfg: Schedules, **kw) -> Scheduler:
    owner = runs.process_id()
    return Scheduler(
        app,
        clock=app.clock,
        config=cfg,
        leadership=Leadership(app.db, holder=owner),
        owner=owner,
        heartbeats=runs.Heartbeats(app.db),
        wake=0.01,
        refresh=0.0,
        **kw,
    )


def settle(s: Scheduler, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while s.running and time.monotonic() < end:
        s._reap()
        time.sleep(0.01)
    assert not s.running, "runs did not finish"


def runs_of(app, job: str = "probe") -> list:
    t = JobRun.__table__
    with app.db.connect() as conn:
        return conn.execute(sa.select(t).where(t.c.job == job).order_by(t.c.id)).all()


def test_series_come_from_config_and_each_tenants_recorded_spec(app, tmp_path) -> None:
    from penguinctl.control import specs
    from penguinctl.spec import load_specs

    (tmp_path / "beta.yaml").write_text(
        agency_spec(1, tenant="beta")
        .replace("shared-mx", "beta-mx")
        .replace("name: zones", "name: beta-zones")
        .replace("dns: zones", "dns: beta-zones")
        .replace(
            "  hostname: mx.agency-mail.example\n",
            "  hostname: mx.beta-mail.example\n  backup: weekly\n",
        )
        + "---\napiVersion: penguinctl/v1\nkind: BackupPolicy\n"
        "metadata: {name: weekly, tenant: beta}\nspec: {schedule: '0 4 * * 0'}\n"
        "---\napiVersion: penguinctl/v1\nkind: Schedule\n"
        "metadata: {name: beta-jobs, tenant: beta}\n"
        "spec: {jobs: {check: {schedule: '*/5 * * * *'}, drift: {enabled: false}}}\n"
    )
    specs.record(
        app.db, load_specs([tmp_path / "beta.yaml"]), tenants=["beta"], run_id=None, actor="test"
    )
    record_tenants(app, "acme")
    cfg = load_schedules(app.env)
    series.sync(app.db, cfg, T0)
    rows = {(r["job"], r["tenant"], r["target"]): r for r in series.listing(app.db)}
    assert rows[("check", "beta", "")]["schedule"] == "*/5 * * * *"
    assert rows[("check", "beta", "")]["source"] == "Schedule/beta-jobs"
    assert rows[("check", "acme", "")]["schedule"] == cfg.jobs["check"].schedule  # the default
    assert rows[("drift", "beta", "")]["active"] is False and rows[("drift", "acme", "")]["active"]
    assert rows[("backup", "beta", "weekly")]["schedule"] == "0 4 * * 0"
    assert rows[("backup", "beta", "weekly")]["next_run"] == "2026-11-29T04:00:00+00:00"
    assert rows[("billing-run", "", "")]["next_run"] == "2026-12-01T06:00:00+00:00"
    assert not any(k[0] == "backup" and k[1] == "acme" for k in rows)  # acme has no policy


def test_due_runs_run_once_and_missed_ticks_collapse(app) -> None:
    record_tenants(app, "acme", "beta")
    s = make_scheduler(app, config("0 * * * *"))
    s.step()  # elected; series created, due at 10:00
    assert s.role == "leader" and CALLS == []
    app.clock.advance(timedelta(minutes=59, seconds=59))
    s.step()
    assert CALLS == []
    app.clock.advance(timedelta(seconds=1))  # 10:00
    s.step()
    settle(s)
    assert sorted(CALLS) == [
        ("acme", "probe", T0 + timedelta(hours=1)),
        ("beta", "probe", T0 + timedelta(hours=1)),
    ]
    s.step()
    settle(s)
    assert len(CALLS) == 2  # a tick runs once
    # serve "down" for 3 days: one catch-up run per series, then back on schedule
    app.clock.advance(timedelta(days=3, minutes=30))
    s.step()
    settle(s)
    s.step()
    settle(s)
    assert len(CALLS) == 4
    caught = runs_of(app)[-2:]
    assert {r.trigger for r in caught} == {"catch-up"}
    assert {r.scheduled_for.replace(tzinfo=UTC) for r in caught} == {
        T0 + timedelta(days=3, hours=1)
    }
    app.clock.advance(timedelta(minutes=30))
    s.step()
    settle(s)
    assert len(CALLS) == 6 and {r.status for r in runs_of(app)} == {"ok"}


def test_a_series_never_runs_twice_at_once(app, capsys) -> None:
    record_tenants(app, "acme")
    job = registry.JOBS["probe"]
    first = runs.start_run(
        app.db,
        job,
        tenant="acme",
        target="",
        trigger="manual",
        scheduled_for=T0,
        started=T0,
        owner="a",
        lease_token=None,
    )
    assert first is not None
    # another process (or the scheduler) cannot start the same series meanwhile
    assert (
        runs.start_run(
            app.db,
            job,
            tenant="acme",
            target="",
            trigger="schedule",
            scheduled_for=T0,
            started=T0,
            owner="b",
            lease_token=1,
        )
        is None
    )
    res = run_inprocess(capsys, "jobs", "run", "probe", "--tenant", "acme")
    assert res.code == 7 and "already running" in res.err
    # another tenant's series is another series
    assert runs.start_run(
        app.db,
        job,
        tenant="beta",
        target="",
        trigger="manual",
        scheduled_for=T0,
        started=T0,
        owner="b",
        lease_token=None,
    )


def test_failures_back_off_and_a_success_resets(app) -> None:
    record_tenants(app, "acme")
    BEHAVIOUR["acme"] = "fail"
    s = make_scheduler(app, config("*/10 * * * *"))
    s.step()
    app.clock.advance(timedelta(minutes=10))
    for _ in range(2):
        s.step()
        settle(s)
    (row,) = [r for r in series.listing(app.db) if r["tenant"] == "acme"]
    assert row["failures"] == 1 and row["last_run"]["status"] == "failed"
    assert runs_of(app)[-1].error == "probe failed on purpose"
    # after n failures the series waits base * 2^(n-1) (5m, 10m, 20m...) but at least a tick
    app.clock.advance(timedelta(minutes=10))
    s.step()
    settle(s)
    (row,) = [r for r in series.listing(app.db) if r["tenant"] == "acme"]
    assert row["failures"] == 2
    assert datetime.fromisoformat(row["next_run"]) >= app.clock.now() + timedelta(minutes=10)
    BEHAVIOUR["acme"] = "ok"
    app.clock.advance(timedelta(minutes=20))
    s.step()
    settle(s)
    (row,) = [r for r in series.listing(app.db) if r["tenant"] == "acme"]
    assert row["failures"] == 0 and row["last_run"]["status"] == "ok"


def test_pause_resume_and_timeout(app, capsys) -> None:
    record_tenants(app, "acme", "beta")
    s = make_scheduler(app, config("0 * * * *", timeout="1s"))
    s.step()
    assert run_inprocess(capsys, "jobs", "pause", "probe", "--tenant", "acme").code == 0
    BEHAVIOUR["beta"] = "hang"  # runs until asked to stop
    app.clock.advance(timedelta(hours=1))
    s.step()
    end = time.monotonic() + 20
    while not CALLS and time.monotonic() < end:  # the run starts on a pool thread
        time.sleep(0.01)
    assert [c[0] for c in CALLS] == ["beta"]  # acme paused
    end = time.monotonic() + 20
    while s.running and time.monotonic() < end:
        s.step()  # the watchdog cancels it past its timeout
        time.sleep(0.05)
    settle(s)
    assert runs_of(app)[-1].status == "timeout"
    assert run_inprocess(capsys, "jobs", "resume", "probe", "--tenant", "acme").code == 0
    BEHAVIOUR["beta"] = "ok"
    app.clock.advance(timedelta(hours=1))
    s.step()
    settle(s)
    assert sorted(c[0] for c in CALLS[1:]) == ["acme", "beta"]
    hist = run_inprocess(capsys, "jobs", "history", "probe", "--tenant", "acme", "-o", "json")
    assert hist.code == 0 and [r["status"] for r in hist.json()["runs"]] == ["ok"]


def test_a_killed_runs_stops_beating_and_is_interrupted(app) -> None:
    from penguinctl.control.tables import db_epoch

    job = registry.JOBS["probe"]
    run_id = runs.start_run(
        app.db,
        job,
        tenant="acme",
        target="",
        trigger="schedule",
        scheduled_for=T0,
        started=T0,
        owner="gone",
        lease_token=1,
    )
    beats = runs.Heartbeats(app.db)
    beats.add(run_id)
    beats.beat()
    assert runs.close_stale(app.db, finished=T0) == 0  # beating: alive
    t = JobRun.__table__
    with app.db.begin() as conn:  # the process died 30 s ago: no beat since
        conn.execute(sa.update(t).values(heartbeat=db_epoch(app.db.dialect.name) - 30))
    assert runs.close_stale(app.db, finished=T0) == 1
    (row,) = runs_of(app)
    assert row.status == "interrupted"
    # the series is free again: its next run starts
    assert runs.start_run(
        app.db,
        job,
        tenant="acme",
        target="",
        trigger="manual",
        scheduled_for=T0,
        started=T0,
        owner="me",
        lease_token=None,
    )


def test_one_leader_at_a_time(app) -> None:
    a = Leadership(app.db, holder="a")
    b = Leadership(app.db, holder="b")
    if app.db.dialect.name == "sqlite":
        a.claim_process()
        from penguinctl.errors import LockHeld

        with pytest.raises(LockHeld, match="one serve runs at a time"):
            b.claim_process()
        a.close()
        return
    assert a.acquire() and a.token == 1
    assert not b.acquire()
    assert a.renew()
    a.close()  # resigns; its session ends
    assert b.acquire() and b.token == 2  # a new fencing token
    assert not a.renew()
    b.close()


def test_jobs_cli_runs_drift_from_the_recorded_spec(app, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    (tmp_path / "a.yaml").write_text(agency_spec(2))
    assert run_inprocess(capsys, "apply", "-f", "a.yaml", "--yes").code == 0
    res = run_inprocess(capsys, "jobs", "run", "drift", "--tenant", "agency", "-o", "json")
    assert res.code == 0, res.err
    (run,) = res.json()["runs"]
    assert run["status"] == "ok" and run["summary"]["drift"] is False
    zone = app.settings.zones_dir / "client00001.example.zone"
    zone.write_text(zone.read_text().replace("v=DMARC1", "v=DMARC1; p=reject; x=hand"))
    res = run_inprocess(capsys, "jobs", "run", "drift", "--tenant", "agency", "-o", "json")
    (run,) = res.json()["runs"]
    assert run["summary"]["drift"] is True and run["summary"]["changes"] >= 1
    assert any("client00001.example" in c["resource"] for c in run["summary"]["listed"])
    assert (
        run_inprocess(capsys, "plan", "-f", "a.yaml", "--detailed-exitcode").code == 2
    )  # unapplied
    listing = run_inprocess(capsys, "jobs", "list", "-o", "json").json()["jobs"]
    assert {"drift", "check", "billing-run"} <= {j["job"] for j in listing}
    res = run_inprocess(capsys, "jobs", "run", "drift", "--tenant", "agency", "--bogus")
    assert res.code == 2


def test_a_serve_without_its_scheduler_beats_the_runs_it_starts(app) -> None:
    """`serve --no-scheduler` still runs the dashboard's "run now" jobs (``ManualRuns``): its
    control plane beats them, so a scheduler leader elsewhere does not fail them as stale."""
    from penguinctl.control.plane import ControlPlane
    from penguinctl.web.dashboard.runner import ManualRuns

    record_tenants(app, "acme")
    cfg = config()
    plane = ControlPlane(app, clock=app.clock, config=cfg)
    plane.heartbeats.interval = 0.05
    plane.start(scheduler=False)
    BEHAVIOUR["acme"] = "wait"
    RELEASE.clear()
    try:
        assert plane.role() != "leader"  # no scheduler, no leadership taken
        assert ManualRuns(app, config=cfg, clock=app.clock, heartbeats=plane.heartbeats)(
            "probe", "acme", ""
        )
        end = time.monotonic() + 30
        while not runs_of(app) and time.monotonic() < end:
            time.sleep(0.02)
        (row,) = runs_of(app)
        first = row.heartbeat
        while (row := runs_of(app)[0]).heartbeat == first and time.monotonic() < end:
            time.sleep(0.02)
        assert row.status == "running" and row.heartbeat > first, row
        # what another serve's scheduler would do: the run is alive, not stale
        assert runs.close_stale(app.db, finished=T0) == 0
    finally:
        RELEASE.set()
        plane.stop()
    end = time.monotonic() + 30
    while runs_of(app)[0].status == "running" and time.monotonic() < end:
        time.sleep(0.02)
    assert runs_of(app)[0].status == "ok"
    assert not plane.heartbeats._thread.is_alive()


def test_a_stop_asks_manual_runs_to_stop_and_marks_the_rest_interrupted(app) -> None:
    """The dashboard's "run now" runs belong to the serve that started them (its owner id): a
    clean stop asks them to stop (their cancel flag) and waits, and one still running after the
    grace is marked interrupted by the plane, not left "running" for another scheduler's
    stale check. Started after the stop began, none runs."""
    from penguinctl.control.plane import ControlPlane
    from penguinctl.web.dashboard.runner import ManualRuns

    record_tenants(app, "acme", "beta")
    cfg = config()
    plane = ControlPlane(app, clock=app.clock, config=cfg)
    plane.start(scheduler=False)
    manual = ManualRuns(
        app, config=cfg, clock=app.clock, heartbeats=plane.heartbeats, owner=plane.owner
    )
    BEHAVIOUR["acme"] = "hang"  # stops when asked
    BEHAVIOUR["beta"] = "wait"  # does not listen
    RELEASE.clear()
    try:
        assert manual("probe", "acme", "") and manual("probe", "beta", "")
        end = time.monotonic() + 30
        while len(runs_of(app)) < 2 and time.monotonic() < end:
            time.sleep(0.02)
        assert {r.owner for r in runs_of(app)} == {plane.owner}
        assert manual.stop(grace=0.5) == 1  # acme's ended when asked; beta's still runs
        assert not manual("probe", "acme", "")  # stopping: no new run
        plane.stop()
        status = {r.tenant: r.status for r in runs_of(app)}
        assert status == {"acme": "ok", "beta": "interrupted"}, status
    finally:
        RELEASE.set()
        assert manual.stop(grace=30) == 0  # beta's thread ends before the store is dropped
        plane.stop()
