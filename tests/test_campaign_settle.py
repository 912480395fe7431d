"""Ambiguous sends settled by the MTA (issue 24 §4): a real Postfix (Debian ``postfix``) as the
submission server writing its own log, read over a real SSH session (sshd on loopback) the way a
MailU server's log is read; the worker SIGKILLed mid-batch many times, every ambiguous send
settled from the log, the end state without a duplicate or a lost lead. Plus: the judgement on
each kind of log entry, the Sent-folder search of an external server (Dovecot), and the
``campaign-settle`` job kept within its tenant."""

from __future__ import annotations

import json
import os
import random
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from campaignkit import make_campaign, record_mailboxes, sends_of
from postfixd import PostfixServer
from smtpsink import SmtpSink
from sshd import SshServer, keygen

from penguinctl.campaigns import postfix_log

STEPS = [{"subject": "Hello {{ email }}", "body": "First"}, {"delay": "1s", "body": "Second"}]


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def _message(mid: str) -> bytes:
    head = f"From: a@one.example\r\nTo: k@dest.example\r\nMessage-ID: {mid}\r\n"
    return (head + "Subject: t\r\n\r\nhi\r\n").encode()


def test_postfix_log_judgement(tmp_path) -> None:
    """Accepted -> sent; received but dropped mid-DATA, or never received, once the log runs
    past the claim -> unsent; a claim before the log starts, or too recent -> still ambiguous."""
    with SmtpSink(tmp_path) as sink, PostfixServer(sink.port) as mta:
        time.sleep(1.1)  # the log's first entry (start-up) is at least a second before
        before = datetime.now(UTC)
        with smtplib.SMTP("127.0.0.1", mta.port, timeout=10) as smtp:
            smtp.sendmail("a@one.example", ["k@dest.example"], _message("<pc.ok@one.example>"))
        raw = socket.create_connection(("127.0.0.1", mta.port), timeout=10)
        f = raw.makefile("rwb")
        f.readline()
        for line in (b"EHLO t", b"MAIL FROM:<a@one.example>", b"RCPT TO:<k@dest.example>", b"DATA"):
            f.write(line + b"\r\n")
            f.flush()
            while True:
                reply = f.readline()
                if reply[3:4] != b"-":
                    break
        f.write(_message("<pc.cut@one.example>") + b"more\r\n" * 1000)  # no end of data
        f.flush()
        _wait_for(lambda: "pc.cut@one.example" in mta.log_text())
        f.close()
        raw.close()  # the client dies mid-DATA
        _wait_for(
            lambda: "pc.cut@one.example" in mta.log_text() and "lost connection" in mta.log_text()
        )
        _wait_for(lambda: sink.count() == 1)
        time.sleep(2.1)  # past the grace (1 s), in the log's whole seconds too
        with smtplib.SMTP("127.0.0.1", mta.port, timeout=10) as smtp:  # the log goes on
            smtp.noop()
        # that session's own last line (its command counts), so the log runs past the grace
        _wait_for(lambda: "noop=1" in mta.log_text())
        text = mta.log_text()
    now = datetime.now(UTC)
    log = postfix_log.parse(text, now)
    grace = timedelta(seconds=1)

    def judge(mid: str, at: datetime = before) -> postfix_log.Judgement:
        return postfix_log.judge(log, mid, at, now, grace)

    assert judge("<pc.ok@one.example>").verdict == "sent"
    cut = judge("<pc.cut@one.example>")
    assert cut.verdict == "unsent" and "dropped" in cut.reason
    assert judge("<pc.never@one.example>").verdict == "unsent"
    early = judge("<pc.never@one.example>", before - timedelta(hours=1))
    assert early.verdict is None and "starts at" in early.reason
    recent = postfix_log.judge(log, "<pc.never@one.example>", now, now, grace)
    assert recent.verdict is None and "later run" in recent.reason


def test_parse_docker_timestamps_and_year() -> None:
    read_at = datetime(2027, 1, 1, 0, 5, tzinfo=UTC)
    text = (
        "2026-12-31T23:59:58.123456789Z penguinctl-log-start\n"
        "Dec 31 23:59:59 mx postfix/submission/cleanup[7]: 4AB12C: message-id=<pc.a@x.example>\n"
        "2027-01-01T00:00:01.5Z Jan  1 00:00:01 mx postfix/qmgr[9]: 4AB12C: from=<a@x.example>, "
        "size=10, nrcpt=1 (queue active)\n"
    )
    log = postfix_log.parse(text, read_at)
    assert log.first == datetime(2026, 12, 31, 23, 59, 58, 123456, tzinfo=UTC)
    assert log.seen["<pc.a@x.example>"][0][1] == datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert log.accepted("<pc.a@x.example>") is not None


def _worker(*extra: str) -> list[str]:
    return [sys.executable, "-m", "penguinctl", "worker", "run", "--no-inbound",
            "--poll-interval", "0.2", *extra]  # fmt: skip


def _static_mx(engine, tenant: str, sshd: SshServer, mta: PostfixServer) -> None:
    """Server ``mx`` as a MailU server reached over SSH; its Postfix log read with a command."""
    from penguinctl.resources import ResourceKey
    from penguinctl.state.db import session_scope
    from penguinctl.state.repo import upsert_resource

    data = {
        "provider": "static",
        "hostname": mta.hostname,
        "ips": [sshd.address],
        "static": {"address": sshd.address, "ssh_user": "root", "ssh_port": sshd.port},
        "mail": {
            "stack": "mailu",
            "submission": {"host": "127.0.0.1", "port": mta.port, "security": "none"},
            "log_command": f"cat {mta.maillog}",
        },
    }
    with session_scope(engine) as s:
        upsert_resource(s, key=ResourceKey("server", tenant, "mx"), provider="server:static",
                        data=data)  # fmt: skip


def _counts(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        ambiguous = conn.execute(
            sa.text("SELECT count(*) FROM campaign_sends WHERE status = 'ambiguous'")
        ).scalar_one()
        active = conn.execute(
            sa.text("SELECT count(*) FROM leads WHERE status = 'active'")
        ).scalar_one()
    return ambiguous, active


@pytest.mark.slow
def test_sigkill_many_times_every_ambiguous_send_settled_by_postfix_log(tmp_path) -> None:
    from penguinctl import secret_paths
    from penguinctl.providers.secrets.keystore import KeystoreBackend
    from penguinctl.settings import load_settings
    from penguinctl.state.db import make_engine, migrate

    leads = 800
    url = f"sqlite:///{tmp_path / 'state.db'}"
    home = tmp_path / "home"
    env = {**os.environ, "PENGUINCTL_STATE": url, "PENGUINCTL_HOME": str(home),
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    engine = make_engine(url)
    migrate(engine)
    senders = ["a@one.example", "b@two.example"]
    priv, pub = keygen(tmp_path / "id_ed25519")
    rng = random.Random(11)
    settled: Counter[str] = Counter()

    def settle() -> None:
        out = subprocess.run(
            [sys.executable, "-m", "penguinctl", "campaign", "resolve", "acme/crash", "--auto",
             "--grace", "1", "-o", "json"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode in (0, 6), out.stderr[-2000:]
        report = json.loads(out.stdout)
        settled["sent"] += len(report["sent"])
        settled["unsent"] += len(report["unsent"])
        for item in report["still_ambiguous"]:
            assert "later run" in item["reason"], item  # only a too recent claim may wait

    sshd = SshServer(tmp_path / "sshd", "127.0.0.14", authorized_keys=[pub])
    with SmtpSink(tmp_path, keep_bodies=False) as sink, PostfixServer(sink.port) as mta, sshd:
        record_mailboxes(engine, "acme", senders, smtp_port=mta.port)
        _static_mx(engine, "acme", sshd, mta)
        s = load_settings(env)
        KeystoreBackend(s.keystore_dir, key_file=s.master_key_file, master_key=s.master_key).put(
            secret_paths.server_ssh("acme", "mx"), {"private_key": priv}
        )
        people = [{"email": f"k{i}@dest.example"} for i in range(leads)]
        cid = make_campaign(engine, "acme", "crash", senders=senders, steps=STEPS, leads=people)
        kills = 0
        deadline = time.monotonic() + 240
        while sink.count() < 2 * leads - 100 and time.monotonic() < deadline and kills < 25:
            before = sink.count()
            proc = subprocess.Popen(_worker("--batch", "20"), env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
            t_end = time.monotonic() + 20
            while sink.count() == before and proc.poll() is None and time.monotonic() < t_end:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
            if proc.poll() is not None:
                pytest.fail(f"worker exited early: {proc.stderr.read().decode()[-2000:]}")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc.stderr.close()
            kills += 1
            time.sleep(1.2)  # past the grace: the log has the killed connection's end by now
            settle()
        for _ in range(30):  # finish: send, settle, until nothing is ambiguous or active
            done = subprocess.run(_worker("--once", "--batch", "20"), env=env,
                                  capture_output=True, text=True, timeout=300)  # fmt: skip
            assert done.returncode == 0, done.stderr[-2000:]
            time.sleep(1.2)
            with smtplib.SMTP("127.0.0.1", mta.port, timeout=10) as smtp:  # the log goes on
                smtp.noop()
            time.sleep(0.3)
            settle()
            if _counts(engine) == (0, 0):
                break
        _wait_for(lambda: mta.queue_empty() and sink.count() >= 2 * leads, timeout=60)
        time.sleep(0.5)
        received = Counter(sink.message_ids)
    sends = sends_of(engine, cid)
    engine.dispose()
    assert kills >= 10
    assert settled["sent"] + settled["unsent"] > 0, settled
    # no duplicate: every message reached the recipient side once
    assert max(received.values()) == 1, received.most_common(3)
    # no lost lead: every (lead, step) sent, recorded sent, received
    assert {s.status for s in sends} == {"sent"}
    assert len(sends) == 2 * leads == len(received)
    assert {s.message_id for s in sends} == set(received)
    print(f"kills={kills} settled={dict(settled)}")


# -- external servers: the Sent folder; the job stays within its tenant -------------------------
def _ambiguous(engine, campaign_id: int, mailbox: str, message_id: str) -> int:
    from penguinctl.campaigns.models import CampaignSend, Lead

    leads, sends = Lead.__table__, CampaignSend.__table__
    with engine.begin() as conn:
        tenant = conn.execute(
            sa.text("SELECT tenant FROM campaigns WHERE id = :id"), {"id": campaign_id}
        ).scalar_one()
        lead = conn.execute(
            sa.select(leads.c.id, leads.c.email)
            .where(leads.c.campaign_id == campaign_id)
            .where(~sa.exists().where(sends.c.lead_id == leads.c.id))
            .order_by(leads.c.id)
            .limit(1)
        ).one()
        return conn.execute(
            sa.insert(sends)
            .values(
                tenant=tenant,
                campaign_id=campaign_id,
                lead_id=lead.id,
                step=0,
                variant="A",
                mailbox=mailbox,
                recipient=lead.email,
                message_id=message_id,
                status="ambiguous",
                worker="gone",
                error="worker stopped",
                claimed_at=datetime.now(UTC) - timedelta(minutes=5),
            )
            .returning(sends.c.id)
        ).scalar_one()


def _status(engine, send_id: int) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT status FROM campaign_sends WHERE id = :id"), {"id": send_id}
        ).scalar()


def _server(session, mail) -> None:
    from penguinctl.resources import ResourceKey
    from penguinctl.state.repo import upsert_resource

    data = {"provider": "external", "hostname": "mx.test", "mail": mail}
    upsert_resource(
        session, key=ResourceKey("server", "acme", "mx"), provider="server:external", data=data
    )


def test_sent_folder_settles_external_sends_and_the_job_keeps_to_its_tenant(
    tmp_path, monkeypatch, capsys, state_url
) -> None:
    from clitools import run_inprocess
    from imapd import ImapServer

    from penguinctl.resources import ResourceKey
    from penguinctl.state.db import make_engine, migrate, session_scope
    from penguinctl.state.repo import upsert_resource

    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    monkeypatch.setenv("JOHN_PW", "john-imap-pw")
    john, sara = "john@acme-mail.example", "sara@other-mail.example"
    engine = make_engine(state_url)
    migrate(engine)
    (tmp_path / "imap").mkdir()
    with ImapServer(tmp_path / "imap", users={john: "john-imap-pw", sara: "x"}) as imap:
        record_mailboxes(engine, "acme", [john], smtp_port=1, imap_port=imap.port)
        record_mailboxes(engine, "other", [sara], smtp_port=1, imap_port=imap.port)
        with session_scope(engine) as s:  # acme's server keeps a Sent folder; other's does not
            mail = {"submission": {"host": "127.0.0.1", "port": 1, "security": "none"},
                    "imap": {"host": "127.0.0.1", "port": imap.port, "security": "none"},
                    "sent_folder": "Sent"}  # fmt: skip
            _server(s, mail)
            box = {"domain": "acme-mail.example", "password": "env:JOHN_PW"}
            upsert_resource(s, key=ResourceKey("mailbox", "acme", john), provider="state", data=box)
        people = [{"email": f"p{i}@dest.example"} for i in range(3)]
        acme = make_campaign(engine, "acme", "q4", senders=[john], steps=STEPS, leads=people)
        other = make_campaign(engine, "other", "spring", senders=[sara], steps=STEPS, leads=people)
        kept = _ambiguous(engine, acme, john, "<pc.kept@acme-mail.example>")
        lost = _ambiguous(engine, acme, john, "<pc.lost@acme-mail.example>")
        theirs = _ambiguous(engine, other, sara, "<pc.kept@acme-mail.example>")  # same id
        client = imap.client(john)
        client.create("Sent")
        client.logout()
        imap.append(john, _message("<pc.kept@acme-mail.example>"), folder="Sent")

        res = run_inprocess(capsys, "jobs", "run", "campaign-settle", "--tenant", "acme")
        assert res.code == 0, res.err + res.out
        assert _status(engine, kept) == "sent"
        assert _status(engine, lost) == "ambiguous"  # a Sent folder need not be complete
        assert _status(engine, theirs) == "ambiguous"  # another tenant's: untouched

        res = run_inprocess(capsys, "campaign", "resolve", "other/spring", "--auto", "-o", "json")
        assert res.code == 6, res.err + res.out
        (item,) = json.loads(res.out)["still_ambiguous"]
        assert item["send_id"] == theirs and "cannot read its log" in item["reason"]
        assert _status(engine, theirs) == "ambiguous"

        with session_scope(engine) as s:  # a server that keeps every message it relays
            mail["sent_folder_complete"] = True
            _server(s, mail)
        res = run_inprocess(capsys, "campaign", "resolve", "acme/q4", "--auto", "-o", "json")
        assert res.code == 0, res.err + res.out
        assert [i["send_id"] for i in json.loads(res.out)["unsent"]] == [lost]
        assert _status(engine, lost) is None  # the row went: the next worker run sends it
    with engine.connect() as conn:
        audit = conn.execute(
            sa.text(
                "SELECT tenant, result FROM audit_events WHERE action = 'campaign.send.resolved'"
            )
        ).all()
    engine.dispose()
    assert sorted(audit) == [("acme", "sent"), ("acme", "unsent")]


def test_docker_log_covers_from_the_later_of_container_start_and_since() -> None:
    from penguinctl.campaigns.ambiguous import AmbiguousSend
    from penguinctl.campaigns.settle import judge_by_log

    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    since = now - timedelta(hours=2)
    claim = now - timedelta(hours=1)

    def send() -> AmbiguousSend:
        return AmbiguousSend(1, 1, "k@dest.example", 0, "A", "a@one.example",
                             "<pc.x@one.example>", claim, "gone", None)  # fmt: skip

    later = "2026-12-06T11:59:00Z mx postfix/smtpd[1]: connect from x\n"
    for started, verdict in (("2026-11-01T00:00:00Z", "unsent"), ("2026-12-06T11:30:00Z", None)):
        log = postfix_log.parse(f"{started} penguinctl-log-start\n" + later, now)
        (judgement,) = judge_by_log(log, [send()], now, timedelta(seconds=30), since).values()
        assert judgement.verdict == verdict, judgement  # restarted after the claim: unknown
