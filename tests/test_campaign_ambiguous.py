"""Ambiguous sends settled by the operator (`campaign ambiguous`, `campaign resolve`): a real
worker against a real SMTP server that takes one message and drops the connection without
answering, and drops another before taking it; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from campaignkit import keystore, leads_of, make_campaign, record_mailboxes, sends_of
from smtpsink import SmtpSink

from penguinctl.campaigns.window import ManualClock
from penguinctl.campaigns.worker import Worker, WorkerOptions
from tests.clitools import run_inprocess

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SENDER = "s0@send0.example"


@pytest.fixture
def setup(state_url, tmp_path, monkeypatch, capsys):
    from penguinctl.state.db import make_engine, migrate

    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    engine = make_engine(state_url)
    migrate(engine)
    with SmtpSink(tmp_path) as sink:

        def cli(*args):
            return run_inprocess(capsys, "--state", state_url, *args)

        def work():
            options = WorkerOptions(once=True, inbound=False)
            return Worker(
                engine, secrets=keystore(tmp_path), clock=ManualClock(T0), options=options
            ).run()

        record_mailboxes(engine, "acme", [SENDER], smtp_port=sink.port)
        cid = make_campaign(
            engine,
            "acme",
            "amb",
            senders=[SENDER],
            leads=[
                {"email": e} for e in ("kept@dest.example", "lost@dest.example", "ok@dest.example")
            ],
        )
        sink.rules["kept@dest.example"] = "accept-drop"  # the server has it; no reply
        sink.rules["lost@dest.example"] = "drop"  # closed before taking it; no reply
        yield engine, sink, cli, work, cid
    engine.dispose()


def ambiguous_ids(cli) -> dict[str, int]:
    res = cli("-o", "json", "campaign", "ambiguous", "acme/amb")
    assert res.code == 0, res.err
    return {a["recipient"]: a["send_id"] for a in json.loads(res.out)["ambiguous"]}


def test_settle_ambiguous_sends_as_sent_and_as_unsent(setup) -> None:
    engine, sink, cli, work, cid = setup
    summary = work()
    assert summary.counts["sent"] == 1 and summary.counts["ambiguous"] == 2
    del sink.rules["kept@dest.example"], sink.rules["lost@dest.example"]
    ids = ambiguous_ids(cli)
    assert set(ids) == {"kept@dest.example", "lost@dest.example"}
    # each was reported as a send.ambiguous event (the lead by id, never its address)
    from eventkit import events as events_of

    reported = events_of(engine, "send.ambiguous")
    assert sorted(e["data"]["send_id"] for e in reported) == sorted(ids.values())
    assert all(e["tenant"] == "acme" and e["data"]["campaign"] == "amb" for e in reported)
    assert "dest.example" not in json.dumps(reported)
    text = cli("campaign", "ambiguous", "amb").out
    assert "2 ambiguous send(s)" in text and "campaign resolve acme/amb" in text
    # never resent on its own
    assert work().counts["sent"] == 0

    # what the server's log said: "kept" went out
    res = cli("-o", "json", "campaign", "resolve", "amb", ids["kept@dest.example"], "--as", "sent")
    assert res.code == 0, res.err
    assert json.loads(res.out)["sends"] == [ids["kept@dest.example"]]
    kept = leads_of(engine, cid)["kept@dest.example"]
    assert kept.next_step == 1 and kept.status == "active"
    assert kept.next_send_at.replace(tzinfo=UTC) == T0 + timedelta(days=1)  # after the delay
    row = next(s for s in sends_of(engine, cid) if s.id == ids["kept@dest.example"])
    assert row.status == "sent" and row.sent_at.replace(tzinfo=UTC) == T0

    # "lost" did not: resending needs confirmation (none in scripts without --yes)
    res = cli(
        "-o", "json", "campaign", "resolve", "amb", ids["lost@dest.example"], "--as", "unsent"
    )
    assert res.code == 2 and "--yes" in res.err
    assert ids["lost@dest.example"] in ambiguous_ids(cli).values()
    res = cli("--yes", "campaign", "resolve", "amb", ids["lost@dest.example"], "--as", "unsent")
    assert res.code == 0 and "next worker run sends" in res.out
    assert ambiguous_ids(cli) == {}
    assert work().counts["sent"] == 1  # "lost", once more, and nothing else
    delivered = [rcpts[0] for _, rcpts, _ in sink.messages]
    assert sorted(delivered) == ["kept@dest.example", "lost@dest.example", "ok@dest.example"]
    assert {s.status for s in sends_of(engine, cid)} == {"sent"}

    from penguinctl.state.models import AuditEvent

    with engine.connect() as conn:
        events = conn.execute(
            sa.select(AuditEvent.__table__.c.result, AuditEvent.__table__.c.details).where(
                AuditEvent.__table__.c.action == "campaign.send.resolved"
            )
        ).all()
    assert sorted(e.result for e in events) == ["sent", "unsent"]
    assert all(e.details["message_id"] for e in events)


def test_resolve_refuses_what_is_not_ambiguous(setup) -> None:
    engine, _sink, cli, work, cid = setup
    work()
    ok = next(s.id for s in sends_of(engine, cid) if s.recipient == "ok@dest.example")
    res = cli("campaign", "resolve", "amb", ok, "--as", "sent")
    assert res.code == 2 and f"send(s) {ok}: not an ambiguous send" in res.err
    assert cli("campaign", "resolve", "amb", "--as", "sent").code == 2  # neither ids nor --all
    assert cli("campaign", "resolve", "amb", "--all").code == 2  # no --as
    assert len(ambiguous_ids(cli)) == 2  # nothing changed
    res = cli("-o", "json", "campaign", "resolve", "amb", "--all", "--as", "sent")
    assert res.code == 0 and len(json.loads(res.out)["sends"]) == 2
    assert ambiguous_ids(cli) == {}
    assert cli("campaign", "resolve", "amb", "--all", "--as", "sent").out.startswith(
        "campaign acme/amb: no ambiguous sends"
    )
