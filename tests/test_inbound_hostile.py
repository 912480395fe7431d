"""Incoming mail is hostile input (issue 16 §2.11): anyone can write to a campaign mailbox.

A malformed message never stops the worker: it is read leniently (unknown charsets, broken
multiparts, huge or folded headers, non-UTF-8 bytes, nested or truncated DSNs), and one that
still cannot be processed is quarantined (an ``inbound_events`` row of kind ``quarantined`` with
the reason, audited) and skipped, so the messages behind it (an unsubscribe) are processed.
End to end through a real Dovecot over IMAP, then fuzzed with hypothesis against the state
store (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from campaignkit import keystore, leads_of, make_campaign, record_mailboxes, sends_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_campaign_dsn import dsn
from test_campaign_inbound import PASSWORD, SENDER, run, servers  # noqa: F401 (a fixture)

from penguinctl.campaigns.inbound import CURSORS, EVENTS, Context, process_message
from penguinctl.campaigns.window import ManualClock

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
KINDS = {
    "reply",
    "autoreply",
    "unsubscribe",
    "hard_bounce",
    "soft_bounce",
    "delayed",
    "unmatched",
    "quarantined",
}


def nested_multipart(depth: int, body: bytes = b"hello") -> bytes:
    """A multipart nested ``depth`` levels deep (the email package recurses on it)."""
    inner = b"Content-Type: text/plain\r\n\r\n" + body + b"\r\n"
    for level in range(depth):
        b = f"b{level}".encode()
        inner = (
            b"Content-Type: multipart/mixed; boundary="
            + b
            + b"\r\n\r\n--"
            + b
            + b"\r\n"
            + inner
            + b"\r\n--"
            + b
            + b"--\r\n"
        )
    return inner


def hostile_messages(msgid: str, frm: str) -> dict[str, bytes]:
    """Hand-written hostile messages; those with ``msgid`` reach the matched-reply path."""
    thread = f"In-Reply-To: {msgid}\r\nReferences: {msgid}\r\n".encode()
    frm_line = f"From: {frm}\r\n".encode()
    refs = " ".join(f"<r{i}@spam.example>" for i in range(20000)) + f" {msgid}"
    report = dsn(frm, "5.1.1", orig_id=msgid)
    return {
        # the reported defect: LookupError in autoreply.own_text
        "unknown charset": frm_line
        + b"Subject: Re: Hi\r\n"
        + thread
        + b"Content-Type: text/plain; charset=x-nonsense\r\n\r\nSounds good\r\n",
        "non-text codec": frm_line
        + b"Subject: Re: Hi\r\n"
        + thread
        + b"Content-Type: text/plain; charset=zlib_codec\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\neJzLSM3JyQcABiwCFQ==\r\n",
        "rfc2231 charset": frm_line
        + b"Subject: Re: Hi\r\n"
        + thread
        + b"Content-Type: text/plain; charset*=x-bogus''%E2%98%83\r\n\r\nok\r\n",
        "non-utf8 bytes": frm_line
        + b"Subject: Re: \xff\xfe caf\xe9\r\n"
        + thread
        + b"Content-Type: text/plain; charset=utf-8\r\n\r\n\xc3\x28 \xff body\r\n",
        "broken boundary": frm_line
        + b"Subject: Re: Hi\r\n"
        + thread
        + b'Content-Type: multipart/alternative; boundary="nope"\r\n\r\n'
        b"--other\r\nContent-Type: text/plain\r\n\r\ntext\r\n--other--\r\n",
        "no boundary": frm_line
        + b"Subject: Re: Hi\r\n"
        + thread
        + b"Content-Type: multipart/mixed\r\n\r\njust text\r\n",
        "huge references": frm_line
        + b"Subject: Re: Hi\r\nReferences: "
        + refs.replace(" ", "\r\n ").encode()
        + b"\r\n\r\nok\r\n",
        "folded headers": frm_line
        + b"Subject: Re:\r\n \r\n\tHi\r\n  there\r\nIn-Reply-To:\r\n "
        + msgid.encode()
        + b"\r\n\r\nok\r\n",
        "huge subject": frm_line + b"Subject: " + b"x" * 500_000 + b"\r\n" + thread + b"\r\nok\r\n",
        "truncated dsn": report[: len(report) * 2 // 3],
        "dsn rfc2231 report-type": report.replace(
            b"report-type=delivery-status", b"report-type*=''delivery-status"
        ),
        "dsn nested in dsn": (
            b"From: MAILER-DAEMON@mx.dest.example\r\nSubject: Undelivered Mail\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
            b' boundary="O"\r\n\r\n--O\r\nContent-Type: message/rfc822\r\n\r\n'
            + report
            + b"\r\n--O\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"garbage without blocks\r\n--O--\r\n"
        ),
        "dsn without blocks": report.replace(b"Action: failed\r\n", b"").replace(
            b"Status: 5.1.1\r\n", b""
        ),
        "deep nesting": frm_line + b"Subject: Re: Hi\r\n" + thread + nested_multipart(2000),
    }


# -- end to end: a real Dovecot -------------------------------------------------------------------
def test_hostile_mail_never_stops_the_worker(migrated_engine, tmp_path, servers) -> None:  # noqa: F811
    sink, imap = servers
    engine = migrated_engine
    store = keystore(tmp_path)
    store.put(f"tenants/acme/mailboxes/{SENDER}", {"password": PASSWORD})
    record_mailboxes(engine, "acme", [SENDER], smtp_port=sink.port, imap_port=imap.port)
    names = ["target", "unsub", "quiet"]
    cid = make_campaign(
        engine,
        "acme",
        "hostile",
        senders=[SENDER],
        leads=[{"email": f"{n}@dest.example"} for n in names],
    )
    clock = ManualClock(T0)
    assert run(engine, store, clock).counts["sent"] == 3
    ids = {r.recipient.split("@")[0]: r.message_id for r in sends_of(engine, cid)}
    hostile = hostile_messages(ids["target"], "target@dest.example")
    for raw in hostile.values():
        imap.append(SENDER, raw)
    # queued behind all of them: an unsubscribe that must still be processed
    imap.append(
        SENDER,
        f"From: unsub@dest.example\r\nSubject: Re: Hi\r\nIn-Reply-To: {ids['unsub']}\r\n\r\n"
        "Please unsubscribe me\r\n".encode(),
    )
    clock.advance(timedelta(days=1))
    second = run(engine, store, clock)  # on main: LookupError from the first message
    assert sum(second.inbound.values()) == len(hostile) + 1, second.inbound
    assert second.inbound["unsubscribe"] == 1
    assert second.inbound["quarantined"] == 1  # the deep nesting: RecursionError
    assert any("quarantined: RecursionError" in p for p in second.problems), second.problems
    leads = leads_of(engine, cid)
    assert leads["unsub@dest.example"].status == "unsubscribed"
    assert leads["target@dest.example"].status in ("replied", "bounced")
    assert second.counts["sent"] == 1  # step 2 to the quiet lead: sending went on
    with engine.connect() as conn:
        rows = conn.execute(sa.select(EVENTS.c.uid, EVENTS.c.kind, EVENTS.c.detail)).all()
        cursor = conn.execute(sa.select(CURSORS.c.last_uid)).scalar()
        audits = conn.execute(
            sa.text(
                "SELECT details FROM audit_events WHERE action = 'campaign.inbound.quarantined'"
            )
        ).all()
    assert len({r.uid for r in rows}) == len(rows) == len(hostile) + 1
    assert cursor == max(r.uid for r in rows)
    [quarantined] = [r for r in rows if r.kind == "quarantined"]
    assert quarantined.detail.startswith("RecursionError")
    assert len(audits) == 1
    # nothing is processed twice; the next run reads nothing
    assert run(engine, store, clock).inbound == {}


# -- fuzz: process_message against the state store -------------------------------------------------
_UIDS = itertools.count(1)
CHARSETS = st.sampled_from(
    ["utf-8", "x-nonsense", "zlib_codec", "rot13", "idna", "utf-7", "utf-16", "", "'", "\x00"]
)
HEADER_NAMES = st.sampled_from(
    [
        "Subject",
        "From",
        "In-Reply-To",
        "References",
        "Auto-Submitted",
        "Precedence",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Message-ID",
        "X-Autoreply",
    ]
)
FOLD = st.sampled_from([b"\r\n ", b"\r\n\t", b"\n ", b"\r\n", b"\r", b""])


@st.composite
def header_lines(draw, msgid: str) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        name = draw(HEADER_NAMES).encode()
        value = draw(
            st.one_of(
                st.binary(max_size=200),
                st.just(msgid.encode()),
                st.builds(
                    lambda cs, b: (
                        b"text/plain; charset=" + cs.encode("latin-1") + b"; boundary=" + b
                    ),
                    CHARSETS,
                    st.binary(max_size=10),
                ),
                st.builds(lambda n: b"x" * n, st.integers(0, 50_000)),
                st.just(b"multipart/report; report-type*=''delivery-status; boundary=B"),
            )
        )
        lines.append(name + b": " + value.replace(b"\n", draw(FOLD)))
    return b"\r\n".join(lines) + b"\r\n"


@st.composite
def hostile_message(draw, msgid: str, frm: str) -> bytes:
    base = draw(st.sampled_from(list(hostile_messages(msgid, frm).values())))
    head = draw(header_lines(msgid))
    cut = draw(st.integers(0, len(base)))
    tail = draw(st.binary(max_size=300))
    return draw(
        st.sampled_from(
            [
                head + base,  # extra (and duplicated) headers first
                base[:cut] + tail,  # truncated, garbage after
                head + b"\r\n" + tail,  # random body
                base[:cut] + head + base[cut:],  # headers spliced in anywhere
            ]
        )
    )


@pytest.fixture
def fuzz_context(migrated_engine, tmp_path):
    engine = migrated_engine
    record_mailboxes(engine, "acme", [SENDER], smtp_port=9)
    cid = make_campaign(
        engine,
        "acme",
        "fuzz",
        senders=[SENDER],
        leads=[{"email": "target@dest.example"}],
    )
    lead_id = next(iter(leads_of(engine, cid).values())).id
    msgid = "<pc.fuzz@acme-mail.example>"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO campaign_sends (tenant, campaign_id, lead_id, step, variant, mailbox,"
                " recipient, message_id, status, claimed_at) VALUES ('acme', :c, :l, 0, 'A', :m,"
                " 'target@dest.example', :i, 'sent', :t)"
            ),
            {"c": cid, "l": lead_id, "m": SENDER, "i": msgid, "t": T0},
        )
        conn.execute(
            sa.insert(CURSORS).values(
                tenant="acme",
                mailbox=SENDER,
                folder="INBOX",
                uidvalidity=1,
                last_uid=0,
                updated_at=T0,
            )
        )
    ctx = Context(engine, "acme", SENDER, "INBOX", 1, T0, {cid: frozenset({"reply"})}, "test")
    return ctx, msgid


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_messages_are_recorded_never_raised(fuzz_context, data) -> None:
    ctx, msgid = fuzz_context
    raw = data.draw(hostile_message(msgid, "target@dest.example"))
    uid = next(_UIDS)
    kind = process_message(ctx, uid, raw)  # never raises
    assert kind in KINDS
    with ctx.engine.connect() as conn:
        rows = conn.execute(sa.select(EVENTS.c.kind).where(EVENTS.c.uid == uid)).all()
        cursor = conn.execute(sa.select(CURSORS.c.last_uid)).scalar()
    assert [r.kind for r in rows] == [kind] and cursor >= uid
    assert process_message(ctx, uid, raw) == "seen"


def test_nul_and_control_characters_are_stored_clean(fuzz_context) -> None:
    """PostgreSQL refuses NUL in text: what is stored from a message is cleaned first."""
    ctx, _ = fuzz_context
    raw = b"From: stranger@else.example\r\nSubject: a\x00b\x1b[31mc\r\n\r\nbody\x00\r\n"
    uid = next(_UIDS)
    assert process_message(ctx, uid, raw) == "unmatched"
    with ctx.engine.connect() as conn:
        detail = conn.execute(sa.select(EVENTS.c.detail).where(EVENTS.c.uid == uid)).scalar()
    assert detail == "a b [31mc"
