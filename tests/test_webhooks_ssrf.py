"""Outbound webhook requests are safe: private addresses refused at add time and again at
connect time (DNS rebinding), the connection goes to the address that was checked, no
redirects followed, answers read up to a cap, timeouts, secrets masked in the excerpt."""

from __future__ import annotations

import contextlib
import time
from http.server import BaseHTTPRequestHandler

import pytest
import sqlalchemy as sa
from campaignkit import keystore
from fakes.loopback import LoopbackHttpDouble

from penguinctl.errors import UsageError
from penguinctl.webhooks import client as wc
from penguinctl.webhooks import endpoints
from penguinctl.webhooks.client import Refused, WebhookClient, check_url

PUBLIC = "93.184.216.34"


class Server(LoopbackHttpDouble):
    """Answers per path: /ok 200, /redirect 302 to /ok, /big 2 MB, /slow after 3 s, /echo
    ``reply``; records every request (path, Host header)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.reply = b""

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.server.fake.seen.append((self.path, self.headers.get("Host")))
                if self.path == "/slow":
                    time.sleep(3)
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/ok")
                    self.end_headers()
                    return
                payload = b"x" * 2_000_000 if self.path == "/big" else self.server.fake.reply
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self._serve(Handler)

    @property
    def port(self) -> int:
        return self._server.server_address[1]


@pytest.fixture
def server():
    with Server() as s:
        yield s


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
     "::1", "fc00::1", "fe80::1", "::ffff:127.0.0.1", "0.0.0.0", "224.0.0.1"],
)  # fmt: skip
def test_private_and_special_addresses_are_refused(address) -> None:
    with pytest.raises(Refused):
        check_url("https://hooks.test/x", allow_private=False, resolver=lambda h, p: [address])


def test_url_rules() -> None:
    public = lambda h, p: [PUBLIC]  # noqa: E731
    assert check_url("https://hooks.test/x", allow_private=False, resolver=public) == [PUBLIC]
    for bad in ("ftp://hooks.test/x", "https://user:pw@hooks.test/x", "https:///x", "nonsense"):
        with pytest.raises(Refused):
            check_url(bad, allow_private=False, resolver=public)
    # one bad address among several is enough to refuse
    with pytest.raises(Refused):
        check_url(
            "https://h.test/", allow_private=False, resolver=lambda h, p: [PUBLIC, "10.0.0.1"]
        )
    # allowed explicitly: loopback passes, multicast never
    assert check_url("http://127.0.0.1:9/", allow_private=True) == ["127.0.0.1"]
    with pytest.raises(Refused):
        check_url("http://224.0.0.1/", allow_private=True)


def test_add_refuses_a_private_url_unless_allowed(tmp_path, server) -> None:
    from penguinctl.state.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    with pytest.raises(UsageError, match="--allow-private"):
        endpoints.add(engine, keystore(tmp_path), f"{server.url}/ok", actor="t")
    with pytest.raises(UsageError, match="localhost"):
        endpoints.add(engine, keystore(tmp_path), f"http://localhost:{server.port}/", actor="t")
    ep, secret = endpoints.add(
        engine, keystore(tmp_path), f"{server.url}/ok", actor="t", allow_private=True
    )
    assert secret.startswith("whsec_") and ep.allow_private
    # the secret is in the secrets backend, never in the state store
    with engine.connect() as conn:
        dump = " ".join(str(r) for r in conn.execute(sa.text("SELECT * FROM webhook_endpoints")))
    assert secret not in dump
    engine.dispose()


def test_dns_rebinding_is_refused_at_connect_time(server) -> None:
    """The name resolved to a public address when the endpoint was added; at delivery it
    answers loopback: the guarded backend checks again and refuses before connecting."""
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    resolver = lambda h, p: next(answers)  # noqa: E731
    url = f"http://rebind.test:{server.port}/ok"
    check_url(url, allow_private=False, resolver=resolver)  # add time: fine
    client = WebhookClient(resolver=resolver)
    try:
        answer = client.post(url, b"{}", {}, allow_private=False)
    finally:
        client.close()
    assert answer.status is None and "refused" in answer.error and "127.0.0.1" in answer.error
    assert server.seen == []


def test_connects_to_the_checked_address_keeping_the_host_name(server) -> None:
    """With private addresses allowed, a name the resolver maps to loopback is reached at the
    address checked (httpx never resolves it again), with the URL's host in the Host header."""
    calls = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    client = WebhookClient(resolver=resolver)
    try:
        answer = client.post(
            f"http://hooks.invalid:{server.port}/ok", b"{}", {}, allow_private=True
        )
    finally:
        client.close()
    assert answer.ok, answer
    assert calls == ["hooks.invalid"] and server.seen == [("/ok", f"hooks.invalid:{server.port}")]


def test_no_redirects_bounded_answers_and_timeouts(server) -> None:
    client = WebhookClient(timeout=1.0)
    try:
        redirected = client.post(f"{server.url}/redirect", b"{}", {}, allow_private=True)
        big = client.post(f"{server.url}/big", b"{}", {}, allow_private=True)
        slow = client.post(f"{server.url}/slow", b"{}", {}, allow_private=True)
    finally:
        client.close()
    assert redirected.status == 302 and not redirected.ok
    assert [p for p, _ in server.seen].count("/ok") == 0  # the Location was not followed
    assert big.ok and len(big.body) <= wc.MAX_RESPONSE
    assert slow.status is None and "timeout" in (slow.error or "")


def test_the_response_excerpt_masks_secrets(tmp_path, server) -> None:
    """An endpoint echoing what it got (a secret included) is recorded with the secret masked."""
    from penguinctl import clock
    from penguinctl.events.outbox import emit
    from penguinctl.events.relay import relay
    from penguinctl.providers.secrets.base import SecretValue
    from penguinctl.state.db import make_engine, migrate
    from penguinctl.webhooks.delivery import AT, Deliverer

    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    secrets = keystore(tmp_path)
    endpoints.add(engine, secrets, f"{server.url}/echo", actor="t", allow_private=True)
    leaked = SecretValue("s3cr3t-token-value-123").reveal()  # known to the masker now
    server.reply = b"received; by the way the token is " + leaked.encode()
    with engine.begin() as conn:
        emit(conn, "campaign.completed", tenant="", subject="x", payload={"campaign": "q4"})
    relay(engine, now=clock.now())
    deliverer = Deliverer(engine, secrets)
    try:
        deliverer.deliver_due()
    finally:
        deliverer.close()
    with engine.connect() as conn:
        (excerpt,) = conn.execute(sa.select(AT.c.response_excerpt)).scalars()
    assert leaked not in excerpt and "******" in excerpt
    engine.dispose()
