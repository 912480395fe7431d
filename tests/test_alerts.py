"""Alert digests to a real SMTP server (aiosmtpd): one mail per recipient per window however
often a check flaps, a recovery mail, tenant walls, a relay that is down."""

from __future__ import annotations

import email
import itertools
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
import sqlalchemy as sa
from campaignkit import keystore
from fakes.state_rows import record_resources
from smtpsink import SmtpSink

from penguinctl import clock
from penguinctl.alerts import subscriptions
from penguinctl.events.loop import EventLoop
from penguinctl.events.outbox import emit
from penguinctl.health import history
from penguinctl.health.results import Result
from penguinctl.state.db import make_engine, migrate, session_scope

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def world(tmp_path, state_url):
    record_resources(state_url, [("tenant", t, t, {}) for t in ("acme", "beta")])
    engine = make_engine(state_url)
    migrate(engine)
    manual = clock.ManualClock(T0)
    previous = clock.install(manual)
    with SmtpSink(tmp_path) as sink:
        env = {
            "PENGUINCTL_ALERT_SMTP": f"127.0.0.1:{sink.port}",
            "PENGUINCTL_ALERT_SMTP_SECURITY": "none",
            "PENGUINCTL_ALERT_FROM": "alerts@penguinctl.test",
        }
        loop = EventLoop(engine, keystore(tmp_path), env=env, clock=manual)
        try:
            yield engine, manual, sink, loop
        finally:
            loop.close()
            clock.install(previous)
            engine.dispose()


def _check(engine, status: str, at: datetime, tenant: str = "acme") -> None:
    r = Result("server", "mx1", tenant, "smtp:25", "203.0.113.7:25", status,
               "connection refused" if status == "fail" else "220 banner")  # fmt: skip
    with session_scope(engine) as session:
        history.save(session, [r], actor="test", targets=["mx1"], started=at)


def _mails(sink, to: str) -> list[email.message.Message]:
    return [email.message_from_bytes(raw) for _, rcpts, raw in sink.messages if to in rcpts]


def test_flapping_check_makes_one_mail_per_window_then_a_recovery(world) -> None:
    engine, manual, sink, loop = world
    subscriptions.add(engine, "ops@acme.example", tenant="acme", every_minutes=15, actor="t")
    subscriptions.add(engine, "ops@beta.example", tenant="beta", every_minutes=15, actor="t")
    subscriptions.add(engine, "oncall@example.net", every_minutes=60, actor="t")
    status = "ok"
    _check(engine, status, manual.now())
    for _ in range(15):  # fails and recovers every 4 minutes for an hour
        manual.advance(timedelta(minutes=4))
        status = "fail" if status == "ok" else "ok"
        _check(engine, status, manual.now())
        loop.run_once()
    if status == "fail":
        manual.advance(timedelta(minutes=4))
        _check(engine, "ok", manual.now())
    manual.advance(timedelta(minutes=30))
    loop.run_once()

    acme = _mails(sink, "ops@acme.example")
    sent = [parsedate_to_datetime(m["Date"]) for m in acme]
    # an hour of flapping (8 failures, 8 recoveries): one mail per 15-minute window at most
    assert 4 <= len(acme) <= 6, [m["Subject"] for m in acme]
    assert all((b - a) >= timedelta(minutes=15) for a, b in itertools.pairwise(sent))
    first = acme[0].get_payload()
    assert acme[0]["Subject"] == "[penguinctl] acme: 1 problem(s)"
    assert "mx1 smtp:25 203.0.113.7:25: fail: connection refused" in first
    assert any("changed" in m.get_payload() and "times" in m.get_payload() for m in acme[1:])
    # the last one says it recovered
    assert acme[-1]["Subject"].startswith("[penguinctl] acme: recovered: mx1 smtp:25")
    assert "Recovered (1)" in acme[-1].get_payload()
    # tenant walls: beta's recipient got none of acme's; the platform's got them, hourly
    assert _mails(sink, "ops@beta.example") == []
    platform = _mails(sink, "oncall@example.net")
    assert 1 <= len(platform) <= 3 and "- acme: mx1 smtp:25" in platform[0].get_payload()
    with engine.connect() as conn:
        digests = conn.execute(sa.text("SELECT status FROM alert_digests")).scalars().all()
    assert set(digests) == {"sent"} and len(digests) == len(acme) + len(platform)


def test_only_alert_events_by_default_and_the_relay_down(world) -> None:
    engine, manual, sink, loop = world
    subscriptions.add(engine, "ops@beta.example", tenant="beta", every_minutes=15, actor="t")
    with engine.begin() as conn:
        emit(conn, "campaign.completed", tenant="beta", subject="campaign/q1",
             payload={"campaign": "q1"})  # not an alert event  # fmt: skip
        emit(conn, "backup.failed", tenant="beta", subject="server/mx9",
             payload={"server": "mx9", "operation": "backup", "run_id": 4,
                      "error": "restic: repository is locked"})  # fmt: skip
        emit(conn, "backup.failed", tenant="acme", subject="server/mx1",
             payload={"server": "mx1", "operation": "backup", "run_id": 5,
                      "error": "acme's, not beta's"})  # fmt: skip
    sink.stop()  # the relay is down
    done = loop.run_once()
    assert [d["error"] is not None for d in done["digests"]] == [True]
    assert loop.run_once()["digests"] == []  # waits RETRY before trying again
    manual.advance(timedelta(minutes=6))
    sink.start()
    loop.run_once()
    (mail,) = _mails(sink, "ops@beta.example")
    body = mail.get_payload()
    assert "backup of mx9 failed: restic: repository is locked" in body
    assert "q1" not in body and "acme" not in body
    with engine.connect() as conn:
        statuses = (
            conn.execute(sa.text("SELECT status FROM alert_digests ORDER BY id")).scalars().all()
        )
    assert statuses == ["failed", "sent"]
