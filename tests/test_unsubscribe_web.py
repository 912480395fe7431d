"""The unsubscribe endpoint (the control plane's HTTP app; `suppress serve` is an alias of
`serve --no-scheduler`): the List-Unsubscribe link of a message a real worker sent through a
real SMTP server, followed over HTTP on 127.0.0.1 -- one-click POST (RFC 8058), the GET page,
bad tokens, any path prefix; and the command itself as a process."""

from __future__ import annotations

import email
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from campaignkit import leads_of, make_campaign, record_mailboxes
from smtpsink import SmtpSink
from sshd import free_port

from penguinctl.campaigns.window import ManualClock
from penguinctl.campaigns.worker import Worker, WorkerOptions

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SENDER = "s0@send0.example"
PUBLIC = "https://track.test.example"  # the campaigns' unsubscribe.url (campaignkit)


@pytest.fixture
def sent(state_url, tmp_path, monkeypatch):
    """A campaign of two leads, both sent their first step: (engine, secrets, env, urls by
    recipient, campaign id)."""
    from penguinctl.providers.secrets.keystore import KeystoreBackend
    from penguinctl.settings import load_settings
    from penguinctl.state.db import make_engine, migrate

    env = {"PENGUINCTL_HOME": str(tmp_path / "home"), "PENGUINCTL_STATE": state_url}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = load_settings(env)
    store = KeystoreBackend(
        settings.keystore_dir, key_file=settings.master_key_file, master_key=settings.master_key
    )
    engine = make_engine(state_url)
    migrate(engine)
    with SmtpSink(tmp_path) as sink:
        record_mailboxes(engine, "acme", [SENDER], smtp_port=sink.port)
        cid = make_campaign(
            engine,
            "acme",
            "unsub",
            senders=[SENDER],
            leads=[{"email": "ann@dest.example"}, {"email": "bob@dest.example"}],
        )
        options = WorkerOptions(once=True, inbound=False)
        assert (
            Worker(engine, secrets=store, clock=ManualClock(T0), options=options)
            .run()
            .counts["sent"]
            == 2
        )
    urls = {}
    for _, rcpts, raw in sink.messages:
        msg = email.message_from_bytes(raw)
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        urls[rcpts[0]] = msg["List-Unsubscribe"].strip("<>")
    assert all(u.startswith(PUBLIC + "/u/") for u in urls.values())
    yield engine, store, env, urls, cid
    engine.dispose()


@pytest.fixture
def served(sent):
    from webkit import LiveApp

    engine, store, _env, urls, cid = sent
    with LiveApp(engine, store) as live:
        local = {rcpt: url.replace(PUBLIC, live.base) for rcpt, url in urls.items()}
        yield engine, local, cid


def audit_unsubscribes(engine) -> list:
    from penguinctl.state.models import AuditEvent

    t = AuditEvent.__table__
    with engine.connect() as conn:
        return conn.execute(sa.select(t).where(t.c.action == "campaign.unsubscribe")).all()


def test_one_click_unsubscribes_and_get_does_not(served) -> None:
    from penguinctl.campaigns import suppression
    from penguinctl.state.db import session_scope

    engine, urls, cid = served
    ann = urls["ann@dest.example"]
    page = httpx.get(ann)
    assert page.status_code == 200 and 'method="post"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert leads_of(engine, cid)["ann@dest.example"].status == "active"  # GET changes nothing

    # what Gmail or Yahoo send (RFC 8058): a POST with no cookies, no redirects followed
    res = httpx.post(ann, data={"List-Unsubscribe": "One-Click"})
    assert res.status_code == 200 and "Unsubscribed" in res.text
    assert httpx.post(ann, data={"List-Unsubscribe": "One-Click"}).status_code == 200  # again
    leads = leads_of(engine, cid)
    assert leads["ann@dest.example"].status == "unsubscribed"
    assert leads["bob@dest.example"].status == "active"
    with session_scope(engine) as s:
        assert suppression.is_suppressed(s, "ann@dest.example", "acme", "acme/other")
        assert not suppression.is_suppressed(s, "bob@dest.example", "acme", "acme/unsub")
    events = audit_unsubscribes(engine)
    assert len(events) == 2 and "ann@dest.example" not in str(events[0].details)


def test_bad_links_change_nothing(served) -> None:
    engine, urls, cid = served
    bob = urls["bob@dest.example"]
    forged = bob[:-3] + ("AAA" if not bob.endswith("AAA") else "BBB")
    assert httpx.post(forged, data={"List-Unsubscribe": "One-Click"}).status_code == 400
    assert httpx.get(forged).status_code == 400
    assert httpx.get(bob.rsplit("/", 1)[0] + "/<script>").status_code == 400
    res = httpx.put(bob, content=b"x")
    assert res.status_code == 405 and res.headers["allow"] == "GET, POST"
    assert httpx.post(bob, content=b"x" * (65 * 1024)).status_code == 413
    assert leads_of(engine, cid)["bob@dest.example"].status == "active"
    assert audit_unsubscribes(engine) == []


def test_any_path_prefix_but_not_the_apps_own(served) -> None:
    engine, urls, cid = served
    bob = urls["bob@dest.example"]
    base, token = bob.rsplit("/u/", 1)
    assert httpx.get(f"{base}/links/unsubscribe/{token}").status_code == 200
    assert (
        httpx.post(f"{base}/x/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    )
    assert leads_of(engine, cid)["bob@dest.example"].status == "unsubscribed"
    # the app's reserved prefixes never answer as unsubscribe links
    assert httpx.post(f"{base}/api/v1/{token}").status_code == 404
    assert httpx.post(f"{base}/hooks/{token}").status_code == 404


def test_a_link_whose_lead_is_gone(served) -> None:
    from penguinctl.campaigns.models import Lead

    engine, urls, _cid = served
    with engine.begin() as conn:
        conn.execute(sa.delete(Lead.__table__).where(Lead.__table__.c.email == "bob@dest.example"))
    assert httpx.post(urls["bob@dest.example"]).status_code == 404


def wait_port(port: int, proc: subprocess.Popen, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.communicate()[1]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the unsubscribe server did not start listening")


def test_suppress_serve_command(sent) -> None:
    engine, _store, env, urls, cid = sent
    port = free_port("127.0.0.1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "penguinctl", "suppress", "serve", "--listen", f"127.0.0.1:{port}"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_port(port, proc)
        url = urls["bob@dest.example"].replace(PUBLIC, f"http://127.0.0.1:{port}")
        token = url.rsplit("/", 1)[1]
        assert httpx.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "POST /u/<token>" in err and token not in err  # the access log hides tokens
    assert "scheduler off" in err  # the alias serves HTTP only
    assert leads_of(engine, cid)["bob@dest.example"].status == "unsubscribed"
