"""A message that cannot be composed, or that a local error stops before its first byte reaches
the server, fails that send alone (issue 16 §2.2, §2.3): the send is ``unsent`` with the reason,
its lead ``failed``, audited; never ``ambiguous``, never the worker. A template broken for every
lead pauses its campaign after a few failures in a row. Real SMTP server (aiosmtpd), SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from campaignkit import keystore, leads_of, make_campaign, record_mailboxes, sends_of
from smtpsink import SmtpSink

from penguinctl.campaigns.transmit import COMPOSE_PAUSE
from penguinctl.campaigns.window import ManualClock
from penguinctl.campaigns.worker import Worker, WorkerOptions

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SENDER = "s0@send0.example"
# A per-lead template: one lead's data makes it loop too much, another's recurse.
BODY = (
    "Hello {{ first_name }},\n"
    "{% if company == 'loops' %}{% for a in company * 20000 %}{% for b in company * 20000 %}"
    "{% endfor %}{% endfor %}{% endif %}"
    "{% macro deep(n) %}{{ deep(n) }}{% endmacro %}{% if company == 'deep' %}{{ deep(1) }}"
    "{% endif %}"
    "{{ company | truncate(-5) if company == 'assert' else '' }}"
    "Bye"
)


@pytest.fixture
def sink(tmp_path):
    with SmtpSink(tmp_path) as s:
        yield s


def run(engine, tmp_path, **opts):
    options = WorkerOptions(once=True, inbound=False, **opts)
    worker = Worker(engine, secrets=keystore(tmp_path), clock=ManualClock(T0), options=options)
    return worker.run()


def audit_actions(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT action FROM audit_events ORDER BY id")).scalars())


def test_a_lead_whose_message_cannot_be_composed_fails_alone(
    migrated_engine, tmp_path, sink
) -> None:
    engine = migrated_engine
    record_mailboxes(engine, "acme", [SENDER], smtp_port=sink.port)
    good = [{"email": f"ok{i}@dest.example", "first_name": f"N{i}"} for i in range(4)]
    bad = [
        {"email": "nameless@dest.example"},  # a variable it lacks (no default)
        {"email": "crlf@dest.example", "first_name": "Ann\r\nBcc: victim@else.example"},
        {"email": "loops@dest.example", "first_name": "L", "company": "loops"},
        {"email": "deep@dest.example", "first_name": "D", "company": "deep"},
        {"email": "assert@dest.example", "first_name": "A", "company": "assert"},
    ]
    # bad leads between good ones: never COMPOSE_PAUSE in a row
    cid = make_campaign(
        engine,
        "acme",
        "mixed",
        senders=[SENDER],
        steps=[{"subject": "Hi {{ first_name }}", "body": BODY}],
        leads=[good[0], bad[0], bad[1], good[1], bad[2], bad[3], good[2], bad[4], good[3]],
    )
    summary = run(engine, tmp_path, batch=20)
    assert summary.counts["sent"] == 4 and summary.counts["unsent"] == 5
    assert summary.counts["ambiguous"] == 0 and summary.paused == []
    assert sink.count() == 4
    assert all(b"victim" not in message[2] for message in sink.messages)
    sends = {row.recipient: row for row in sends_of(engine, cid)}
    assert {r: s.status for r, s in sends.items()} == {
        **{lead["email"]: "sent" for lead in good},
        **{lead["email"]: "unsent" for lead in bad},
    }
    assert "first_name" in sends["nameless@dest.example"].error
    assert "CR or LF" in sends["crlf@dest.example"].error
    assert "loop iterations" in sends["loops@dest.example"].error
    assert "nested more than" in sends["deep@dest.example"].error
    assert "truncate" in sends["assert@dest.example"].error
    leads = leads_of(engine, cid)
    assert {lead["email"]: leads[lead["email"]].status for lead in bad} == dict.fromkeys(
        (lead["email"] for lead in bad), "failed"
    )
    assert all(leads[lead["email"]].next_step == 1 for lead in good)
    assert audit_actions(engine).count("campaign.send.unsent") == 5
    with engine.connect() as conn:
        status = conn.execute(sa.text("SELECT status FROM campaigns")).scalar()
        day_count = conn.execute(sa.text("SELECT day_count FROM campaign_mailboxes")).scalar()
    assert status == "completed"  # not paused: every lead was sent or failed
    assert day_count == 4  # unsent messages do not count against the mailbox
    from sqlmodel import Session

    from penguinctl.campaigns.models import Campaign
    from penguinctl.campaigns.stats import campaign_stats

    with Session(engine) as session:
        stats = campaign_stats(session, session.get(Campaign, cid)).as_dict()
    assert stats["totals"]["unsent"] == 5 and stats["totals"]["in_flight"] == 0
    assert stats["totals"]["bounce_rate"] == 0.0 and stats["leads"]["failed"] == 5
    # nothing is left claimed, nothing is retried or resent
    again = run(engine, tmp_path)
    assert again.counts["sent"] == 0 and again.ambiguous == [] and sink.count() == 4


def test_a_template_broken_for_every_lead_pauses_its_campaign(
    migrated_engine, tmp_path, sink
) -> None:
    engine = migrated_engine
    record_mailboxes(engine, "acme", [SENDER], smtp_port=sink.port)
    cid = make_campaign(
        engine,
        "acme",
        "broken",
        senders=[SENDER],
        fields=["industry"],
        steps=[{"subject": "Hi", "body": "For {{ industry }} teams"}],
        leads=[{"email": f"n{i}@dest.example"} for i in range(COMPOSE_PAUSE + 3)],
    )
    summary = run(engine, tmp_path, batch=20)
    assert summary.counts["sent"] == 0 and sink.count() == 0
    assert summary.counts["unsent"] == COMPOSE_PAUSE and summary.counts["ambiguous"] == 0
    assert summary.paused == ["acme/broken"]
    assert any("industry" in p for p in summary.problems)
    sends = sends_of(engine, cid)
    assert [s.status for s in sends] == ["unsent"] * COMPOSE_PAUSE  # the others: released
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT status, paused_reason FROM campaigns")).one()
        assert conn.execute(sa.text("SELECT count(*) FROM send_retries")).scalar() == 0
    assert row.status == "paused"
    assert f"{COMPOSE_PAUSE} messages in a row" in row.paused_reason
    assert "industry" in row.paused_reason
    statuses = sorted(lead.status for lead in leads_of(engine, cid).values())
    assert statuses == ["active"] * 3 + ["failed"] * COMPOSE_PAUSE


def test_a_local_error_before_the_message_is_unsent_not_ambiguous(
    migrated_engine, tmp_path, sink
) -> None:
    """smtplib refuses a non-ASCII recipient while writing RCPT TO (UnicodeEncodeError): the
    message was never written, so the send is unsent and the worker goes on."""
    engine = migrated_engine
    record_mailboxes(engine, "acme", [SENDER], smtp_port=sink.port)
    cid = make_campaign(
        engine,
        "acme",
        "local",
        senders=[SENDER],
        leads=[
            {"email": "first@dest.example"},
            {"email": "jöhn@dest.example"},  # stored before import refused such addresses
            {"email": "last@dest.example"},
        ],
    )
    summary = run(engine, tmp_path, batch=1)
    assert summary.counts["sent"] == 2 and summary.counts["unsent"] == 1
    assert summary.counts["ambiguous"] == 0
    assert sink.count() == 2
    sends = {row.recipient: row for row in sends_of(engine, cid)}
    assert sends["jöhn@dest.example"].status == "unsent"
    assert "UnicodeEncodeError" in sends["jöhn@dest.example"].error
    assert leads_of(engine, cid)["jöhn@dest.example"].status == "failed"
    assert "campaign.send.unsent" in audit_actions(engine)
