"""Done-when of issue 7: a 3-step campaign to 500 leads over 5 mailboxes runs to completion
against a real SMTP server (aiosmtpd, STARTTLS + AUTH) and a real IMAP server (Dovecot), with
replies, auto-replies, unsubscribes and bounces stopping exactly the right leads. The clock is
injected: the steps' delays (1 day, 2 days) pass between worker runs."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from campaignkit import keystore, leads_of, make_campaign, record_mailboxes, sends_of
from imapd import ImapServer
from smtpsink import SmtpSink
from test_campaign_dsn import dsn
from test_campaign_inbound import reply

from penguinctl.campaigns.window import ManualClock
from penguinctl.campaigns.worker import Worker, WorkerOptions

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # Monday
SENDERS = [f"rep{i}@mail{i}.example" for i in range(5)]
PASSWORDS = {s: f"pw-{i}-{i * 7919}" for i, s in enumerate(SENDERS)}
STEPS = [
    {
        "subject": "{Quick|Short} question, {{ first_name | default('there') }}",
        "body": "Hi {{ first_name | default('there') }}, about {{ company | default('you') }}...",
    },
    {"delay": "1d", "body": "Just bumping this up."},
    {"delay": "2d", "body": "Last note from me."},
]


@pytest.mark.slow
def test_three_steps_500_leads_5_mailboxes(tmp_path) -> None:
    from penguinctl.state.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    store = keystore(tmp_path)
    for address, password in PASSWORDS.items():
        store.put(f"tenants/acme/mailboxes/{address}", {"password": password})
    (tmp_path / "smtp").mkdir()
    (tmp_path / "imap").mkdir()
    with (
        SmtpSink(
            tmp_path / "smtp", security="starttls", users=PASSWORDS, keep_bodies=False
        ) as sink,
        ImapServer(tmp_path / "imap", users=PASSWORDS) as imap,
    ):
        record_mailboxes(
            engine,
            "acme",
            SENDERS,
            smtp_port=sink.port,
            security="starttls",
            imap_port=imap.port,
            daily_limit=200,
        )
        cid = make_campaign(
            engine,
            "acme",
            "launch",
            senders=SENDERS,
            steps=STEPS,
            schedule={
                "timezone": "lead",
                "fallback_timezone": "UTC",
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "hours": "08:00-20:00",
            },
            limits={"per_mailbox_daily": 150, "min_gap": "0s"},
            stop_on=["reply", "bounce", "unsubscribe"],
            bounce_pause_threshold="10%",
            leads=[
                {
                    "email": f"lead{i:03d}@dest{i % 7}.example",
                    "first_name": f"N{i}",
                    "timezone": ["Europe/Berlin", "Europe/London", None][i % 3],
                }
                for i in range(500)
            ],
        )
        clock = ManualClock(T0)

        def run() -> dict:
            w = Worker(
                engine,
                secrets=store,
                clock=clock,
                options=WorkerOptions(once=True, concurrency=2, cafile=str(sink.cafile)),
            )
            summary = w.run().to_json()
            assert not summary["problems"], summary["problems"]
            return summary

        # day 1: step 1 to everyone, 100 per mailbox
        s1 = run()
        assert s1["sent"] == 500 and sorted(s1["per_mailbox"].values()) == [100] * 5
        first = {r.recipient: r for r in sends_of(engine, cid)}
        emails = sorted(first)
        repliers, bouncers = emails[0:50], emails[50:75]
        auto, unsub, late_repliers = emails[75:85], emails[85:90], emails[90:110]
        for e in repliers:
            imap.append(first[e].mailbox, reply(first[e].message_id, e))
        for e in bouncers:
            imap.append(first[e].mailbox, dsn(e, "5.1.1", orig_id=first[e].message_id))
        for e in auto:
            imap.append(
                first[e].mailbox,
                reply(
                    first[e].message_id,
                    e,
                    "Out of Office: Hi",
                    "Back next week",
                    "Auto-Submitted: auto-replied\r\n",
                ),
            )
        for e in unsub:
            imap.append(first[e].mailbox, reply(first[e].message_id, e, body="unsubscribe"))

        # day 2: the inbound mail stops 80 leads, step 2 goes to the other 420
        clock.advance(timedelta(days=1))
        s2 = run()
        assert s2["inbound"] == {"reply": 50, "hard_bounce": 25, "autoreply": 10, "unsubscribe": 5}
        assert s2["sent"] == 420
        second = {r.recipient: r for r in sends_of(engine, cid) if r.step == 1}
        for e in late_repliers:  # replies to the follow-up, threaded under it
            imap.append(second[e].mailbox, reply(second[e].message_id, e))

        # day 3: nothing due yet (2-day delay); day 4: the last step to 400 leads
        clock.advance(timedelta(days=1))
        s3 = run()
        assert s3["sent"] == 0 and s3["inbound"] == {"reply": 20}
        clock.advance(timedelta(days=1))
        s4 = run()
        assert s4["sent"] == 400
        assert s4["completed_campaigns"] == ["acme/launch"]
        received = Counter(sink.message_ids)

    sends = sends_of(engine, cid)
    assert len(sends) == 1320 and {s.status for s in sends} == {"sent"}
    assert len(received) == 1320 and max(received.values()) == 1
    leads = leads_of(engine, cid)
    status = Counter(lead.status for lead in leads.values())
    assert status == {"completed": 400, "replied": 70, "bounced": 25, "unsubscribed": 5}
    for e in repliers + late_repliers:
        assert leads[e].status == "replied"
    for e in bouncers:
        assert leads[e].status == "bounced"
    for e in auto:
        assert leads[e].status == "completed"  # an out-of-office reply does not stop the lead
    # every lead's follow-ups came from its first mailbox, inside its window (08-20 local)
    from zoneinfo import ZoneInfo

    by_lead: dict[int, set[str]] = {}
    for s in sends:
        by_lead.setdefault(s.lead_id, set()).add(s.mailbox)
        tz = ZoneInfo(leads[s.recipient].timezone or "UTC")
        local = s.sent_at.replace(tzinfo=UTC).astimezone(tz)
        assert 8 <= local.hour < 20 and local.weekday() < 5
    assert all(len(m) == 1 for m in by_lead.values())
    engine.dispose()
