"""`penguinctl serve --with-worker`: the campaign worker runs inside the control plane, sends a
launched campaign to a real SMTP server (aiosmtpd) and reports its sends on /metrics; SIGTERM
stops it cleanly with nothing left claimed. One tenant's sending never touches another's."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from campaignkit import keystore, make_campaign, record_mailboxes, sends_of
from servekit import Serve, move_clock, schedules, wait_for
from smtpsink import SmtpSink

# Not marked `clock`: its processes run at a fixed date (PENGUINCTL_TODAY / a clock file), which
# takes precedence over the shifted runs' PENGUINCTL_TIME_OFFSET: a shifted re-run repeats it.

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday morning
SENDERS = {"acme": ["rep@acme-mail.example"], "globex": ["rep@globex-mail.example"]}


@pytest.mark.parametrize("state_url", ["sqlite", "postgres"], indirect=True)
def test_serve_with_worker_sends_and_stops_cleanly(tmp_path, state_url) -> None:
    from penguinctl import secret_paths
    from penguinctl.state.db import make_engine, migrate

    home = tmp_path / "home"
    home.mkdir()
    clock = tmp_path / "clock"
    move_clock(clock, T0)
    engine = make_engine(state_url)
    migrate(engine)
    # the serve process's own keystore: PENGUINCTL_HOME/keystore with PENGUINCTL_HOME/master.key
    store = keystore(home)
    passwords = {}
    for tenant, senders in SENDERS.items():
        for address in senders:
            passwords[address] = f"pw-{tenant}"
            store.put(secret_paths.mailbox(tenant, address), {"password": passwords[address]})
    (tmp_path / "smtp").mkdir()
    try:
        with SmtpSink(tmp_path / "smtp", users=passwords, keep_bodies=False) as sink:
            campaigns = {}
            for tenant, senders in SENDERS.items():
                record_mailboxes(engine, tenant, senders, smtp_port=sink.port)
                campaigns[tenant] = make_campaign(
                    engine,
                    tenant,
                    "launch",
                    senders=senders,
                    steps=[{"subject": "Hello {{ first_name }}", "body": "Hi {{ first_name }}."}],
                    leads=[
                        {"email": f"lead{i}@{tenant}-dest.example", "first_name": f"N{i}"}
                        for i in range(15)
                    ],
                )
            env = {
                "PENGUINCTL_HOME": str(home),
                "PENGUINCTL_STATE": state_url,
                "PENGUINCTL_CLOCK_FILE": str(clock),
                "PENGUINCTL_SCHEDULES": str(schedules(tmp_path / "schedules.json")),
                "PROBE_LOG": str(tmp_path / "probe.log"),
                "PROBE_HOLD": str(tmp_path / "release"),
            }
            serve = Serve(env, "--with-worker").start()
            try:
                serve.ready()
                try:
                    wait_for(
                        lambda: len([s for s in sends_of(engine) if s.status == "sent"]) == 30,
                        timeout=120,
                        what="30 sends by the in-process worker",
                    )
                except AssertionError as exc:
                    raise AssertionError(f"{exc}: {serve.log()[-3000:]}") from None
                metrics = httpx.get(f"{serve.base}/metrics", timeout=10).text
                assert 'penguinctl_sends{status="sent"} 30.0' in metrics
                assert 'penguinctl_worker_sends_total{status="sent"} 30.0' in metrics
            finally:
                code = serve.stop()
            log = (home / f"serve-{serve.port}.log").read_text()
            assert code == 0, log[-2000:]
            assert "Traceback" not in log and "campaign worker stopped: 30 sent" in log, log[-2000:]
            # each message went out from its own tenant's mailbox, once per lead
            by_sender: dict[str, set[str]] = {}
            for sender, recipients, _head in sink.messages:
                by_sender.setdefault(sender, set()).update(recipients)
            assert by_sender == {
                SENDERS[t][0]: {f"lead{i}@{t}-dest.example" for i in range(15)} for t in SENDERS
            }
            assert len(sink.messages) == 30
            for tenant, cid in campaigns.items():
                rows = sends_of(engine, cid)
                assert len(rows) == 15 and {r.status for r in rows} == {"sent"}, tenant
    finally:
        engine.dispose()


def test_a_failed_worker_is_logged_and_started_again(monkeypatch, caplog) -> None:
    import threading
    from types import SimpleNamespace

    from penguinctl.control.plane import ControlPlane

    ran: list[str] = []
    done = threading.Event()

    class Flaky:
        def __init__(self, n: int) -> None:
            self.n = n

        def run(self):
            ran.append(f"worker {self.n}")
            if self.n == 0:
                raise RuntimeError("state store gone")
            done.set()
            return SimpleNamespace(counts={"sent": 3})

        def stop(self) -> None:
            pass

    made = iter(range(5))
    plane = object.__new__(ControlPlane)
    plane._threads = []
    monkeypatch.setattr(ControlPlane, "_make_worker", lambda self: Flaky(next(made)))
    waits: list[float] = []
    real_event = threading.Event

    class FastEvent(real_event):  # the back-off is recorded, not slept
        def wait(self, timeout=None):
            waits.append(timeout)
            return False

    monkeypatch.setattr("penguinctl.control.plane.threading.Event", FastEvent)
    with caplog.at_level("INFO", logger="penguinctl.serve"):
        plane._start_worker()
        assert done.wait(10)
        plane._threads[0].join(10)
    assert ran == ["worker 0", "worker 1"]
    assert [w for w in waits if w is not None] == [5.0]  # (Thread.start waits with None)
    messages = [r.getMessage() for r in caplog.records]
    assert "campaign worker failed: state store gone; starting it again in 5 s" in messages
    assert "campaign worker stopped: 3 sent" in messages
