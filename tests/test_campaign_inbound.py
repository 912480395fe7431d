"""Replies, auto-replies, bounces and unsubscribes read from a real Dovecot over IMAP, and the
bounce-rate auto-pause; messages reach the mailbox by IMAP APPEND, sends go to aiosmtpd."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from campaignkit import keystore, leads_of, make_campaign, record_mailboxes, sends_of
from imapd import ImapServer
from smtpsink import SmtpSink
from test_campaign_dsn import dsn

from penguinctl.campaigns.window import ManualClock
from penguinctl.campaigns.worker import Worker, WorkerOptions

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SENDER = "sales@acme-mail.example"
PASSWORD = "imap-pw-7781"


@pytest.fixture
def servers(tmp_path):
    (tmp_path / "smtp").mkdir()
    (tmp_path / "imap").mkdir()
    with (
        SmtpSink(tmp_path / "smtp", users={SENDER: PASSWORD}) as sink,
        ImapServer(tmp_path / "imap", users={SENDER: PASSWORD}) as imap,
    ):
        yield sink, imap


def reply(
    to_id: str, frm: str, subject: str = "Re: Hi", body: str = "Sounds good", extra: str = ""
) -> bytes:
    return (
        f"From: {frm}\r\nTo: {SENDER}\r\nSubject: {subject}\r\nIn-Reply-To: {to_id}\r\n"
        f"References: {to_id}\r\nMessage-ID: <r{abs(hash((to_id, subject)))}@x>\r\n"
        f"{extra}\r\n{body}\r\n"
    ).encode()


def run(engine, store, clock, **opts):
    opts.setdefault("once", True)
    return Worker(engine, secrets=store, clock=clock, options=WorkerOptions(**opts)).run()


def test_replies_bounces_unsubscribes_stop_the_right_leads(
    migrated_engine, tmp_path, servers
) -> None:
    sink, imap = servers
    engine = migrated_engine
    store = keystore(tmp_path)
    store.put(f"tenants/acme/mailboxes/{SENDER}", {"password": PASSWORD})
    record_mailboxes(engine, "acme", [SENDER], smtp_port=sink.port, imap_port=imap.port)
    names = ["reply", "ooo", "hard", "soft", "unsub", "quiet", "byaddr"]
    cid = make_campaign(
        engine,
        "acme",
        "inbound",
        senders=[SENDER],
        leads=[{"email": f"{n}@dest.example"} for n in names],
    )
    clock = ManualClock(T0)
    first = run(engine, store, clock)
    assert first.counts["sent"] == 7 and not first.problems, str(first.to_json())
    ids = {r.recipient.split("@")[0]: r.message_id for r in sends_of(engine, cid)}
    imap.append(SENDER, reply(ids["reply"], "reply@dest.example"))
    imap.append(
        SENDER,
        reply(
            ids["ooo"],
            "ooo@dest.example",
            "Automatic reply: Hi",
            "I am out of the office",
            "Auto-Submitted: auto-replied\r\n",
        ),
    )
    imap.append(SENDER, dsn("hard@dest.example", "5.1.1", orig_id=ids["hard"]))
    imap.append(SENDER, dsn("soft@dest.example", "4.2.2", orig_id=ids["soft"]))
    imap.append(SENDER, reply(ids["unsub"], "unsub@dest.example", body="Please unsubscribe me"))
    # no threading headers: matched by the sender's address
    imap.append(SENDER, b"From: byaddr@dest.example\r\nSubject: hello\r\n\r\nCall me\r\n")
    imap.append(SENDER, b"From: stranger@else.example\r\nSubject: spam\r\n\r\nBuy now\r\n")
    clock.advance(timedelta(days=1))
    second = run(engine, store, clock)
    assert second.inbound == {
        "reply": 2,
        "autoreply": 1,
        "hard_bounce": 1,
        "soft_bounce": 1,
        "unsubscribe": 1,
        "unmatched": 1,
    }
    status = {e.split("@")[0]: lead.status for e, lead in leads_of(engine, cid).items()}
    assert status == {
        "reply": "replied",
        "ooo": "active",
        "hard": "bounced",
        "soft": "active",
        "unsub": "unsubscribed",
        "quiet": "active",
        "byaddr": "replied",
    }
    assert second.counts["sent"] == 3  # step 2 to ooo, soft and quiet only
    from sqlmodel import Session

    from penguinctl.campaigns import suppression

    with Session(engine) as s:
        assert suppression.is_suppressed(s, "hard@dest.example", "acme", None)
        assert suppression.is_suppressed(s, "unsub@dest.example", "acme", None)
        assert not suppression.is_suppressed(s, "soft@dest.example", "acme", None)
    # two more soft bounces: the third stops and suppresses the lead
    imap.append(SENDER, dsn("soft@dest.example", "4.2.2", orig_id=ids["soft"]))
    imap.append(SENDER, dsn("soft@dest.example", "4.4.7", orig_id=ids["soft"]))
    third = run(engine, store, clock)
    assert third.inbound == {"soft_bounce": 2}  # nothing processed twice (UID cursor)
    assert leads_of(engine, cid)["soft@dest.example"].status == "bounced"
    assert run(engine, store, clock).inbound == {}
    # every message is still in the mailbox, unread
    conn = imap.client(SENDER)
    conn.select("INBOX", readonly=True)
    assert len(conn.uid("SEARCH", None, "UNSEEN")[1][0].split()) == 9
    conn.logout()


def test_bounce_rate_pauses_mailbox_and_campaign(migrated_engine, tmp_path, servers) -> None:
    sink, imap = servers
    engine = migrated_engine
    store = keystore(tmp_path)
    store.put(f"tenants/acme/mailboxes/{SENDER}", {"password": PASSWORD})
    record_mailboxes(engine, "acme", [SENDER], smtp_port=sink.port, imap_port=imap.port)
    cid = make_campaign(
        engine,
        "acme",
        "bouncy",
        senders=[SENDER],
        bounce_pause_threshold="10%",
        leads=[{"email": f"b{i}@dest.example"} for i in range(10)],
    )
    clock = ManualClock(T0)
    run(engine, store, clock, bounce_min_sample=10)
    ids = {r.recipient: r.message_id for r in sends_of(engine, cid)}
    for i in range(2):
        imap.append(SENDER, dsn(f"b{i}@dest.example", "5.1.1", orig_id=ids[f"b{i}@dest.example"]))
    clock.advance(timedelta(days=1))
    s = run(engine, store, clock, bounce_min_sample=10)
    assert s.counts["sent"] == 0
    assert any(p.startswith(f"mailbox {SENDER}: bounce rate 20.0%") for p in s.paused)
    assert any(p.startswith("campaign acme/bouncy") for p in s.paused)
    from penguinctl.campaigns.ledger import MAILBOXES
    from penguinctl.campaigns.models import Campaign

    with engine.connect() as c:
        assert c.execute(sa.select(MAILBOXES.c.status)).scalar() == "paused"
        row = c.execute(sa.select(Campaign.__table__)).first()
    assert row.status == "paused" and "20.0%" in row.paused_reason


def test_imap_over_tls(migrated_engine, tmp_path) -> None:
    engine = migrated_engine
    store = keystore(tmp_path)
    store.put(f"tenants/acme/mailboxes/{SENDER}", {"password": PASSWORD})
    (tmp_path / "smtp").mkdir()
    (tmp_path / "imap").mkdir()
    with (
        SmtpSink(tmp_path / "smtp", users={SENDER: PASSWORD}) as sink,
        ImapServer(tmp_path / "imap", users={SENDER: PASSWORD}, security="tls") as imap,
    ):
        record_mailboxes(
            engine, "acme", [SENDER], smtp_port=sink.port, imap_port=imap.port, imap_security="tls"
        )
        cid = make_campaign(
            engine,
            "acme",
            "tls",
            senders=[SENDER],
            leads=[{"email": "x@dest.example"}, {"email": "y@dest.example"}],
        )
        clock = ManualClock(T0)
        opts = {"cafile": str(imap.cafile)}
        assert run(engine, store, clock, **opts).counts["sent"] == 2
        send = sends_of(engine, cid)[0]
        imap.append(SENDER, reply(send.message_id, "x@dest.example"))
        s = run(engine, store, clock, **opts)
        assert s.inbound == {"reply": 1} and not s.problems
        # a wrong CA: reported as a problem, the worker goes on
        bad = run(engine, store, clock)
        assert any("imap" in p and "CERTIFICATE_VERIFY_FAILED" in p for p in bad.problems), str(
            bad.to_json()
        )
