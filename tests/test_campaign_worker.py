"""The sending worker against a real SMTP server (aiosmtpd on 127.0.0.1), with an injected clock:
rotation, follow-ups, caps, gaps, windows, warmup, SMTP outcomes, suppression, one SQLite worker."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from campaignkit import keystore, leads_of, make_campaign, record_mailboxes, sends_of
from smtpsink import SmtpSink

from penguinctl.campaigns.smtp import SmtpConnection
from penguinctl.campaigns.window import ManualClock
from penguinctl.campaigns.worker import Worker, WorkerOptions
from penguinctl.errors import LockHeld

pytestmark = pytest.mark.clock  # date-sensitive: scripts/test re-runs it under shifted clocks

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def sink(tmp_path):
    with SmtpSink(tmp_path) as s:
        yield s


def worker(engine, tmp_path, clock, **opts) -> Worker:
    opts.setdefault("once", True)
    opts.setdefault("inbound", False)
    return Worker(engine, secrets=keystore(tmp_path), clock=clock, options=WorkerOptions(**opts))


def boxes(n: int) -> list[str]:
    return [f"s{i}@send{i}.example" for i in range(n)]


def test_sequence_rotation_threading_and_completion(migrated_engine, tmp_path, sink) -> None:
    engine = migrated_engine
    senders = boxes(3)
    record_mailboxes(engine, "acme", senders, smtp_port=sink.port)
    cid = make_campaign(
        engine,
        "acme",
        "q4",
        senders=senders,
        leads=[{"email": f"lead{i}@dest.example", "first_name": f"L{i}"} for i in range(9)],
    )
    clock = ManualClock(T0)
    s1 = worker(engine, tmp_path, clock).run()
    assert s1.counts["sent"] == 9
    assert sorted(s1.per_mailbox.values()) == [3, 3, 3]  # least recently used first
    assert sink.count() == 9
    # nothing else is due until the first delay (1d) has passed
    assert worker(engine, tmp_path, clock).run().counts["sent"] == 0
    clock.advance(timedelta(days=1))
    assert worker(engine, tmp_path, clock).run().counts["sent"] == 9
    clock.advance(timedelta(days=1))
    assert worker(engine, tmp_path, clock).run().counts["sent"] == 0  # step 3 waits 2 days
    clock.advance(timedelta(days=1))
    s4 = worker(engine, tmp_path, clock).run()
    assert s4.counts["sent"] == 9
    assert s4.completed == ["acme/q4"]
    leads = leads_of(engine, cid)
    assert {lead.status for lead in leads.values()} == {"completed"}
    sends = sends_of(engine, cid)
    assert len(sends) == 27 and {s.status for s in sends} == {"sent"}
    # follow-ups come from the lead's first mailbox and are threaded under the earlier steps
    by_lead: dict[int, list] = {}
    for s in sends:
        by_lead.setdefault(s.lead_id, []).append(s)
    for rows in by_lead.values():
        assert len({r.mailbox for r in rows}) == 1
    parsed = {
        email.message_from_bytes(m[2])["Message-ID"]: email.message_from_bytes(m[2])
        for m in sink.messages
    }
    assert len(parsed) == 27
    for rows in by_lead.values():
        rows.sort(key=lambda r: r.step)
        third = parsed[rows[2].message_id]
        assert third["In-Reply-To"] == rows[1].message_id
        assert third["References"].split() == [rows[0].message_id, rows[1].message_id]
        assert third["Subject"].startswith("Re: ")
    assert sink.message_ids.most_common(1)[0][1] == 1


def test_daily_cap_min_gap_and_next_day(migrated_engine, tmp_path, sink) -> None:
    engine = migrated_engine
    senders = boxes(2)
    record_mailboxes(engine, "acme", senders, smtp_port=sink.port, daily_limit=4)
    make_campaign(
        engine,
        "acme",
        "capped",
        senders=senders,
        limits={"per_mailbox_daily": 3, "min_gap": "60s"},
        leads=[{"email": f"c{i}@dest.example"} for i in range(20)],
    )
    clock = ManualClock(T0)
    # min gap: one send per mailbox per minute
    assert worker(engine, tmp_path, clock).run().counts["sent"] == 2
    clock.advance(timedelta(seconds=59))
    assert worker(engine, tmp_path, clock).run().counts["sent"] == 0
    clock.advance(timedelta(seconds=1))
    assert worker(engine, tmp_path, clock).run().counts["sent"] == 2
    clock.advance(timedelta(minutes=5))
    assert worker(engine, tmp_path, clock).run().counts["sent"] == 2
    clock.advance(timedelta(minutes=5))
    # the campaign cap (3, under the mailbox's 4) is reached
    assert worker(engine, tmp_path, clock).run().counts["sent"] == 0
    clock.set(datetime(2026, 11, 24, 0, 0, 30, tzinfo=UTC))
    assert worker(engine, tmp_path, clock).run().counts["sent"] == 2


def test_warmup_ramp_caps_a_new_mailbox(migrated_engine, tmp_path, sink) -> None:
    engine = migrated_engine
    senders = boxes(1)
    record_mailboxes(engine, "acme", senders, smtp_port=sink.port, created_at=T0)
    make_campaign(
        engine,
        "acme",
        "warm",
        senders=senders,
        warmup={"preset": "aggressive"},
        steps=[{"subject": "One", "body": "only step"}],
        leads=[{"email": f"w{i}@dest.example"} for i in range(80)],
    )
    clock = ManualClock(T0 + timedelta(hours=1))
    assert worker(engine, tmp_path, clock).run().counts["sent"] == 20  # day 0: start volume
    clock.advance(timedelta(days=7))  # day 7 of 28: 20 + 980/28*7 = 265, campaign cap 10000
    assert worker(engine, tmp_path, clock).run().counts["sent"] == 60  # the remaining leads


def test_window_in_each_leads_zone(migrated_engine, tmp_path, sink) -> None:
    engine = migrated_engine
    senders = boxes(1)
    record_mailboxes(engine, "acme", senders, smtp_port=sink.port)
    cid = make_campaign(
        engine,
        "acme",
        "zones",
        senders=senders,
        schedule={
            "timezone": "lead",
            "fallback_timezone": "America/New_York",
            "days": ["mon", "tue", "wed", "thu", "fri"],
            "hours": "09:00-17:00",
        },
        leads=[
            {"email": "berlin@dest.example", "timezone": "Europe/Berlin"},
            {"email": "tokyo@dest.example", "timezone": "Asia/Tokyo"},
            {"email": "nozone@dest.example"},
        ],
    )
    clock = ManualClock(T0)  # Monday 10:00 UTC = 11:00 Berlin, 19:00 Tokyo, 05:00 New York
    s = worker(engine, tmp_path, clock).run()
    assert s.counts["sent"] == 1
    leads = leads_of(engine, cid)
    assert leads["berlin@dest.example"].next_step == 1
    ny_open = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 09:00 EST
    tokyo_open = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # Tuesday 09:00 JST
    assert leads["nozone@dest.example"].next_send_at.replace(tzinfo=UTC) == ny_open
    assert leads["tokyo@dest.example"].next_send_at.replace(tzinfo=UTC) == tokyo_open
    clock.set(ny_open)
    assert worker(engine, tmp_path, clock).run().counts["sent"] == 1
    clock.set(tokyo_open)
    assert worker(engine, tmp_path, clock).run().counts["sent"] == 1


def test_smtp_outcomes_and_suppression(migrated_engine, tmp_path, sink) -> None:
    from sqlmodel import Session

    from penguinctl.campaigns import suppression

    engine = migrated_engine
    senders = boxes(1)
    record_mailboxes(engine, "acme", senders, smtp_port=sink.port)
    sink.rules.update(
        {
            "nouser@dest.example": "550 5.1.1 no such user",
            "later@dest.example": "data:451 4.3.0 try again later",
            "spam@dest.example": "data:554 5.7.1 message refused",
            "drop@dest.example": "accept-drop",
        }
    )
    with Session(engine) as s:
        suppression.add(s, "blocked@dest.example", "tenant", "acme", "test")
        s.commit()
    names = ["ok", "nouser", "later", "spam", "drop", "blocked"]
    cid = make_campaign(
        engine,
        "acme",
        "outcomes",
        senders=senders,
        leads=[{"email": f"{n}@dest.example"} for n in names],
    )
    clock = ManualClock(T0)
    s = worker(engine, tmp_path, clock).run()
    assert (s.counts["sent"], s.counts["failed"], s.counts["released"], s.counts["ambiguous"]) == (
        1,
        2,
        1,
        1,
    )
    leads = leads_of(engine, cid)
    status = {e.split("@")[0]: lead.status for e, lead in leads.items()}
    assert status == {
        "ok": "active",
        "nouser": "bounced",
        "later": "active",
        "spam": "bounced",
        "drop": "active",
        "blocked": "suppressed",
    }
    sends = {r.recipient.split("@")[0]: r for r in sends_of(engine, cid)}
    assert sends["ok"].status == "sent" and sends["drop"].status == "ambiguous"
    assert sends["nouser"].status == "failed" and "5.1.1" in sends["nouser"].error
    assert "later" not in sends  # released: the server did not take it
    assert "blocked" not in sends
    with Session(engine) as sess:
        assert suppression.is_suppressed(sess, "nouser@dest.example", "acme", None)
        assert not suppression.is_suppressed(sess, "spam@dest.example", "acme", None)
    later = leads["later@dest.example"]
    assert later.next_step == 0 and later.next_send_at.replace(tzinfo=UTC) > T0
    # the retry: the server now accepts it; the ambiguous one is never retried
    del sink.rules["later@dest.example"], sink.rules["drop@dest.example"]
    clock.advance(timedelta(hours=3))
    s2 = worker(engine, tmp_path, clock).run()
    assert s2.counts["sent"] == 1  # "later" (step 0); the others wait for their delay
    assert sink.message_ids.most_common(1)[0][1] == 1
    drop = [m for m in sink.messages if m[1] == ["drop@dest.example"]]
    assert len(drop) == 1  # accepted once, outcome unknown to the worker, not resent


def test_auth_starttls_password_from_keystore(migrated_engine, tmp_path) -> None:
    engine = migrated_engine
    senders = boxes(2)
    store = keystore(tmp_path)
    store.put(f"tenants/acme/mailboxes/{senders[0]}", {"password": "pw-zero-123"})
    store.put(f"tenants/acme/mailboxes/{senders[1]}", {"password": "wrong-password"})
    with SmtpSink(
        tmp_path, security="starttls", users={senders[0]: "pw-zero-123", senders[1]: "pw-one-456"}
    ) as sink:
        record_mailboxes(engine, "acme", senders, smtp_port=sink.port, security="starttls")
        cid = make_campaign(
            engine,
            "acme",
            "auth",
            senders=senders,
            leads=[{"email": f"a{i}@dest.example"} for i in range(6)],
        )
        w = Worker(
            engine,
            secrets=store,
            clock=ManualClock(T0),
            options=WorkerOptions(once=True, inbound=False, cafile=str(sink.cafile)),
        )
        s = w.run()
    assert s.counts["sent"] == 6, str(s.to_json())
    assert s.per_mailbox == {senders[0]: 6}
    # connections reused: at most one per transaction in flight, opened only when needed
    assert 1 <= sink.auth_ok[senders[0]] <= WorkerOptions().in_flight
    assert set(sink.auth_ok) == {senders[0]}
    from penguinctl.campaigns.ledger import MAILBOXES

    with engine.connect() as conn:
        state = {r.address: r for r in conn.execute(sa.select(MAILBOXES))}
    assert state[senders[1]].status == "paused"
    assert "535" in state[senders[1]].paused_reason
    assert "wrong-password" not in state[senders[1]].paused_reason
    assert {r.status for r in sends_of(engine, cid)} == {"sent"}


def test_sqlite_refuses_a_second_worker(tmp_path) -> None:
    from penguinctl.campaigns.ledger import WorkerGuard
    from penguinctl.state.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    with WorkerGuard(engine, "first"), pytest.raises(LockHeld, match="another worker"):
        WorkerGuard(engine, "second").acquire()
    with WorkerGuard(engine, "third"):  # released when the first one stopped
        pass
    engine.dispose()


def test_cli_worker_run_once_json_and_second_sqlite_worker(tmp_path, capsys, monkeypatch) -> None:
    from clitools import run_inprocess

    from penguinctl.campaigns.ledger import WorkerGuard
    from penguinctl.state.db import make_engine, migrate

    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = make_engine(url)
    migrate(engine)
    senders = boxes(2)
    with SmtpSink(tmp_path) as sink:
        record_mailboxes(engine, "acme", senders, smtp_port=sink.port)
        make_campaign(
            engine,
            "acme",
            "cli",
            senders=senders,
            leads=[{"email": f"cli{i}@dest.example"} for i in range(4)],
        )
        res = run_inprocess(
            capsys, "--state", url, "worker", "run", "--once", "--no-inbound", "-o", "json"
        )
        assert res.code == 0, res.err
        data = res.json()
        assert data["sent"] == 4 and data["per_mailbox"] == {senders[0]: 2, senders[1]: 2}
        assert data["recovered_ambiguous"] == []
        text = run_inprocess(capsys, "--state", url, "worker", "run", "--once", "--no-inbound")
        assert text.code == 0 and "0 sent" in text.out
        with WorkerGuard(engine, "someone-else"):
            busy = run_inprocess(capsys, "--state", url, "worker", "run", "--once")
        assert busy.code == 7
        assert "another worker is already running" in busy.err
        boxes_out = run_inprocess(capsys, "--state", url, "worker", "mailboxes", "-o", "json")
        assert {m["address"] for m in boxes_out.json()["mailboxes"]} == set(senders)
    engine.dispose()


def test_follow_up_across_dst_keeps_local_time(migrated_engine, tmp_path, sink) -> None:
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    engine = migrated_engine
    senders = boxes(1)
    record_mailboxes(engine, "acme", senders, smtp_port=sink.port)
    cid = make_campaign(
        engine,
        "acme",
        "dst",
        senders=senders,
        steps=[{"subject": "Hi", "body": "one"}, {"delay": "3d", "body": "two"}],
        schedule={
            "timezone": "lead",
            "fallback_timezone": "UTC",
            "days": ["mon", "tue", "wed", "thu", "fri"],
            "hours": "09:00-17:00",
        },
        leads=[{"email": "ny@dest.example", "timezone": "America/New_York"}],
    )
    clock = ManualClock(datetime(2026, 10, 30, 10, 0, tzinfo=ny))  # Friday, EDT (UTC-4)
    assert worker(engine, tmp_path, clock).run().counts["sent"] == 1
    lead = leads_of(engine, cid)["ny@dest.example"]
    due = lead.next_send_at.replace(tzinfo=UTC)
    # 3 days later is Monday 2 November, after the change to EST: still 10:00 local
    assert due.astimezone(ny).replace(tzinfo=None) == datetime(2026, 11, 2, 10, 0)
    assert due == datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    clock.set(due - timedelta(minutes=1))
    assert worker(engine, tmp_path, clock).run().counts["sent"] == 0
    clock.set(due)
    assert worker(engine, tmp_path, clock).run().counts["sent"] == 1


def test_paused_mailbox_freezes_its_warmup_ramp(migrated_engine) -> None:
    from penguinctl.campaigns.ledger import MAILBOXES
    from penguinctl.campaigns.mailboxes import pause_mailbox, resume_mailbox

    engine = migrated_engine
    with engine.begin() as conn:
        conn.execute(
            sa.insert(MAILBOXES).values(
                tenant="acme",
                address="w@x.example",
                status="active",
                day_count=0,
                warmup_started_at=T0,
                updated_at=T0,
            )
        )
        pause_mailbox(conn, "acme", "w@x.example", "bounce rate 9%", T0 + timedelta(days=3))
        assert not resume_mailbox(conn, "acme", "nobody@x.example", T0)
        assert resume_mailbox(conn, "acme", "w@x.example", T0 + timedelta(days=8))
        row = conn.execute(sa.select(MAILBOXES)).first()
    assert row.status == "active" and row.paused_reason is None
    # five paused days do not count: the ramp is on day 3 again, not day 8
    assert row.warmup_started_at.replace(tzinfo=UTC) == T0 + timedelta(days=5)


def test_batch_spans_mailboxes_within_caps_and_gap(migrated_engine, tmp_path, sink) -> None:
    """One claim transaction takes several sends, but never more from a mailbox than its gap
    and cap allow: with a 60s gap a batch of 20 holds one send per mailbox."""
    engine = migrated_engine
    senders = boxes(3)
    record_mailboxes(engine, "acme", senders, smtp_port=sink.port)
    cid = make_campaign(
        engine,
        "acme",
        "batched",
        senders=senders,
        limits={"per_mailbox_daily": 2, "min_gap": "60s"},
        leads=[{"email": f"b{i}@dest.example"} for i in range(10)],
    )
    clock = ManualClock(T0)
    s1 = worker(engine, tmp_path, clock, batch=20).run()
    assert s1.counts["sent"] == 3 and sorted(s1.per_mailbox.values()) == [1, 1, 1]
    clock.advance(timedelta(seconds=60))
    s2 = worker(engine, tmp_path, clock, batch=20).run()
    assert s2.counts["sent"] == 3
    clock.advance(timedelta(seconds=60))
    assert worker(engine, tmp_path, clock, batch=20).run().counts["sent"] == 0  # cap 2 reached
    sends = sends_of(engine, cid)
    assert len(sends) == 6 and {s.status for s in sends} == {"sent"}
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT address, day_count FROM campaign_mailboxes")).all()
    counts = {r.address: r.day_count for r in rows}
    assert counts == dict.fromkeys(senders, 2)


@pytest.mark.parametrize("in_flight", [1, 3])
def test_transactions_in_flight_each_on_its_own_connection(
    migrated_engine, tmp_path, in_flight
) -> None:
    """A server slow to answer the end of DATA: the worker keeps ``in_flight`` transactions of
    one mailbox going at once (the server sees that many at once), each on a connection of its
    own, opened when needed and reused; every message is delivered once."""
    engine = migrated_engine
    senders = boxes(1)
    with SmtpSink(tmp_path, users={senders[0]: "pw"}) as sink:
        sink.data_delay = 0.2
        store = keystore(tmp_path)
        store.put(f"tenants/acme/mailboxes/{senders[0]}", {"password": "pw"})
        record_mailboxes(engine, "acme", senders, smtp_port=sink.port)
        make_campaign(
            engine,
            "acme",
            "overlap",
            senders=senders,
            leads=[{"email": f"o{i}@dest.example"} for i in range(9)],
        )
        assert (
            worker(engine, tmp_path, ManualClock(T0), in_flight=in_flight).run().counts["sent"] == 9
        )
    assert sink.count() == 9 and set(sink.message_ids.values()) == {1}
    assert sink.max_active == in_flight
    assert sink.auth_ok == {senders[0]: in_flight}


@pytest.mark.parametrize("per_server", [1, 2])
def test_connections_to_one_server_are_capped(migrated_engine, tmp_path, per_server) -> None:
    """Six mailboxes on one server, no gap: the worker never holds more than ``per_server``
    connections to it (the one idle the longest is closed before another opens; the cap also
    bounds the transactions in flight to that server), and every message goes out once."""
    engine = migrated_engine
    senders = boxes(6)
    with SmtpSink(tmp_path) as sink:
        sink.data_delay = 0.05
        record_mailboxes(engine, "acme", senders, smtp_port=sink.port)
        make_campaign(
            engine,
            "acme",
            "capped",
            senders=senders,
            leads=[{"email": f"c{i}@dest.example"} for i in range(18)],
        )
        clock = ManualClock(T0)
        summary = worker(engine, tmp_path, clock, in_flight=2, per_server=per_server).run()
        assert summary.counts["sent"] == 18
        assert sorted(summary.per_mailbox.values()) == [3] * 6
    assert sink.count() == 18 and set(sink.message_ids.values()) == {1}
    assert sink.max_connections == per_server
    assert sink.max_active == per_server


def test_a_mailbox_with_a_gap_keeps_one_connection(migrated_engine, tmp_path) -> None:
    """Mailboxes with a minimum gap take one send each per batch: their transactions overlap
    each other (several mailboxes in flight at once), but none opens a second connection."""
    engine = migrated_engine
    senders = boxes(3)
    store = keystore(tmp_path)
    users = {s: f"pw-{i}" for i, s in enumerate(senders)}
    for address, password in users.items():
        store.put(f"tenants/acme/mailboxes/{address}", {"password": password})
    with SmtpSink(tmp_path, users=users) as sink:
        sink.data_delay = 0.2
        record_mailboxes(engine, "acme", senders, smtp_port=sink.port)
        make_campaign(
            engine,
            "acme",
            "gapped",
            senders=senders,
            leads=[{"email": f"g{i}@dest.example"} for i in range(9)],
            limits={"per_mailbox_daily": 100, "min_gap": "1m"},
        )
        clock = ManualClock(T0)
        for _ in range(3):
            summary = worker(engine, tmp_path, clock, in_flight=4).run()
            assert summary.counts["sent"] == 3  # one per mailbox, then the gap
            clock.advance(timedelta(minutes=1))
    assert sink.count() == 9
    assert sink.max_active == 3  # the three mailboxes at once
    assert sink.auth_ok == dict.fromkeys(senders, 3)  # one connection per mailbox per run


@pytest.mark.parametrize("in_flight", [1, 2])
def test_stop_mid_batch_releases_the_unsent_claims(
    migrated_engine, tmp_path, sink, monkeypatch, in_flight
) -> None:
    """Stopping when the first message of a batch is accepted: the messages on the wire then
    (one, or two with two transactions in flight) are finished and recorded sent; the rest of
    the batch, claimed but never handed to the server, is released (no ledger row, no attempt
    counted, the mailbox's daily count given back) and sent by the next run."""
    engine = migrated_engine
    senders = boxes(1)
    record_mailboxes(engine, "acme", senders, smtp_port=sink.port)
    cid = make_campaign(
        engine,
        "acme",
        "stopper",
        senders=senders,
        leads=[{"email": f"m{i}@dest.example"} for i in range(8)],
    )
    clock = ManualClock(T0)
    w = worker(engine, tmp_path, clock, batch=5, in_flight=in_flight)
    real_transaction = SmtpConnection.transaction

    def send_then_stop(self, *args):  # SIGTERM arriving while the first message is on the wire
        outcome = yield from real_transaction(self, *args)
        w.stop()
        return outcome

    monkeypatch.setattr(SmtpConnection, "transaction", send_then_stop)
    assert w.run().counts["sent"] == in_flight
    monkeypatch.undo()
    assert sink.count() == in_flight
    sends = sends_of(engine, cid)
    assert [s.status for s in sends] == ["sent"] * in_flight
    with engine.connect() as conn:
        day_count = conn.execute(sa.text("SELECT day_count FROM campaign_mailboxes")).scalar()
        assert day_count == in_flight
        assert conn.execute(sa.text("SELECT count(*) FROM send_retries")).scalar() == 0
    assert worker(engine, tmp_path, clock, batch=5).run().counts["sent"] == 8 - in_flight
    assert sink.count() == 8
    assert {s.status for s in sends_of(engine, cid)} == {"sent"}


class SilentAfterData:
    """An SMTP server on loopback that takes the whole message and then never answers."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import contextlib

        with contextlib.suppress(OSError):
            conn, _ = self.sock.accept()
            self.conns.append(conn)
            reader = conn.makefile("rb")
            conn.sendall(b"220 silent.example ESMTP\r\n")
            while line := reader.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO", b"MAIL", b"RCPT", b"RSET"):
                    conn.sendall(b"250 ok\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go on\r\n")
                    while reader.readline() not in (b".\r\n", b""):
                        pass
                    # ... and no reply: the message may or may not have been queued

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


def test_a_server_that_never_answers_the_message_makes_it_ambiguous(
    migrated_engine, tmp_path
) -> None:
    """The whole message written, no reply within the SMTP timeout: the send is ambiguous
    (never retried), and the worker returns instead of waiting forever."""
    import threading

    engine = migrated_engine
    server = SilentAfterData()
    try:
        record_mailboxes(engine, "acme", boxes(1), smtp_port=server.port)
        cid = make_campaign(
            engine, "acme", "silent", senders=boxes(1), leads=[{"email": "q@dest.example"}]
        )
        w = worker(engine, tmp_path, ManualClock(T0), smtp_timeout=1.0)
        done: list = []
        runner = threading.Thread(target=lambda: done.append(w.run()), daemon=True)
        runner.start()
        runner.join(30)
        assert done, "the worker did not return"
        assert done[0].counts["ambiguous"] == 1 and done[0].counts["sent"] == 0
        assert [s.status for s in sends_of(engine, cid)] == ["ambiguous"]
    finally:
        server.close()


class _BusyServer:
    """Answers every connection with ``421`` (too many connections) and hangs up."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.turned_away = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"421 4.7.0 mx.test.example too many connections, try later\r\n")
                self.turned_away += 1

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("server", ["refused", "busy"])
def test_a_mailbox_server_down_or_busy_never_counts_against_the_leads(
    migrated_engine, tmp_path, server
) -> None:
    """Nothing listening on the submission port, or a server that answers 421 at connect: the
    claims are given back without counting an attempt (more runs than MAX_ATTEMPTS change
    nothing: no lead bounces), the mailbox's day count is given back, and once the server
    takes mail every lead is sent once."""
    from sshd import free_port

    from penguinctl.campaigns.ledger import MAX_ATTEMPTS

    engine = migrated_engine
    senders = boxes(1)
    busy = _BusyServer() if server == "busy" else None
    port = busy.port if busy else free_port("127.0.0.1")
    record_mailboxes(engine, "acme", senders, smtp_port=port)
    cid = make_campaign(
        engine,
        "acme",
        "down",
        senders=senders,
        leads=[{"email": f"d{i}@dest.example"} for i in range(4)],
    )
    clock = ManualClock(T0)
    try:
        for _ in range(MAX_ATTEMPTS + 2):
            s = worker(engine, tmp_path, clock).run()
            assert s.counts["sent"] == 0 and s.counts["failed"] == 0
            assert s.counts["released"] >= 1
            clock.advance(timedelta(minutes=2))  # past the mailbox's backoff
    finally:
        if busy:
            busy.close()
    if busy:
        assert busy.turned_away >= MAX_ATTEMPTS + 2
    assert sends_of(engine, cid) == []
    assert {lead.status for lead in leads_of(engine, cid).values()} == {"active"}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM send_retries")).scalar() == 0
        assert conn.execute(sa.text("SELECT day_count FROM campaign_mailboxes")).scalar() == 0
    with SmtpSink(tmp_path) as sink:  # the server is back
        record_mailboxes(engine, "acme", senders, smtp_port=sink.port)
        assert worker(engine, tmp_path, clock).run().counts["sent"] == 4
    assert sink.count() == 4 and set(sink.message_ids.values()) == {1}
