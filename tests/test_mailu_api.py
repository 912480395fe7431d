"""The MailU REST API client against the local double of MailU's API (tests/fakes/mailu.py):
idempotent helpers, MailU's status codes and quirks, retries, and the token kept out of every
message. Also the MailU credentials in the secrets backend."""

from __future__ import annotations

import socket

import httpx
import pytest
from fakes.mailu import FakeMailu

from penguinctl.mailu.credentials import mailu_credentials
from penguinctl.providers.mailu_api import (
    MailuAuthError,
    MailuClient,
    MailuConflict,
    MailuConnectionError,
    MailuInvalid,
    MailuNotFound,
    MailuUnavailable,
)

TOKEN = "mailu-test-token-5f0c2a9d1e7b4c3a8d6e"


@pytest.fixture
def fake():
    with FakeMailu(api_token=TOKEN) as server:
        yield server


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(fake, sleeps):
    c = MailuClient(fake.url, TOKEN, server="mx1", sleep=sleeps.append, backoff=0.5)
    yield c
    c.close()


def raw(fake, method, path, token=TOKEN, **kw):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.request(method, fake.url + path, headers=headers, timeout=5, **kw)


# -- the double behaves like MailU ---------------------------------------------------------------
def test_double_status_codes_and_bodies(fake):
    assert raw(fake, "GET", "/domain", token=None).status_code == 401
    assert raw(fake, "GET", "/domain", token=None).json() == {
        "message": "A valid Authorization header is mandatory"
    }
    resp = raw(fake, "GET", "/domain", token="wrong-token")
    assert resp.status_code == 403 and resp.json() == {"message": "Invalid API token"}
    # the bare token (no "Bearer ") works too: MailU strips the prefix
    bare = httpx.get(fake.url + "/domain", headers={"Authorization": TOKEN}, timeout=5)
    assert bare.status_code == 200 and bare.json() == []

    created = raw(fake, "POST", "/domain", json={"name": "acme-mail.example"})
    assert created.status_code == 200
    assert created.json() == {"code": 200, "message": "Domain acme-mail.example has been created"}
    dup = raw(fake, "POST", "/domain", json={"name": "acme-mail.example"})
    assert dup.status_code == 409 and dup.json()["code"] == 409
    missing = raw(fake, "GET", "/domain/other.example")
    assert missing.status_code == 404 and missing.json()["code"] == 404
    # MailU's quirk: a bad name is 400 in the body of an HTTP 200
    bad = raw(fake, "GET", "/domain/not_a..domain")
    assert bad.status_code == 200 and bad.json()["code"] == 400
    # flask-restx validation runs before auth and has its own shape
    invalid = raw(fake, "POST", "/domain", token=None, json={"max_users": "x"})
    assert invalid.status_code == 400
    assert invalid.json()["message"] == "Input payload validation failed"
    assert set(invalid.json()["errors"]) == {"name", "max_users"}
    # PATCH of an unknown domain is a 500 in MailU 2024.06
    assert raw(fake, "PATCH", "/domain/nope.example", json={}).status_code == 500
    # users: created without returning the object; GET shows the hash, never the password
    ok = raw(fake, "POST", "/user", json={"email": "John@acme-mail.example", "raw_password": "pw1"})
    assert ok.status_code == 200 and ok.json()["code"] == 200
    user = raw(fake, "GET", "/user/john@acme-mail.example").json()
    assert user["email"] == "john@acme-mail.example" and user["reply_subject"] is None
    assert user["password"].startswith("$pbkdf2-sha256$") and "pw1" not in user["password"]
    assert fake.login("john@acme-mail.example", "pw1")
    assert not fake.login("john@acme-mail.example", "pw2")
    assert "reply_subject" not in raw(fake, "GET", "/user").json()[0]  # skip_none in lists
    # aliases only to existing users; destinations stored sorted and de-duplicated
    bad_dest = raw(
        fake,
        "POST",
        "/alias",
        json={"email": "sales@acme-mail.example", "destination": ["x@elsewhere.example"]},
    )
    assert bad_dest.status_code == 404
    raw(
        fake,
        "POST",
        "/alias",
        json={
            "email": "sales@acme-mail.example",
            "destination": ["john@acme-mail.example", "john@acme-mail.example"],
        },
    )
    assert fake.aliases["sales@acme-mail.example"]["destination"] == ["john@acme-mail.example"]
    # deleting a domain takes its users and aliases
    assert raw(fake, "DELETE", "/domain/acme-mail.example").status_code == 200
    assert fake.users == {} and fake.aliases == {}
    assert raw(fake, "GET", "/nothing").status_code == 404
    assert raw(fake, "PUT", "/domain").status_code == 405


def test_failed_tokens_rate_limit_the_ip(fake):
    for _ in range(5):
        assert raw(fake, "GET", "/user", token="nope-nope").status_code == 403
    resp = raw(fake, "GET", "/user")  # even the right token, from that IP
    assert resp.status_code == 429
    fake.reset_ratelimit()
    assert raw(fake, "GET", "/user").status_code == 200


# -- the client --------------------------------------------------------------------------------
def test_domains_are_idempotent(client, fake):
    fields = {"max_users": -1, "max_aliases": -1, "max_quota_bytes": 0, "signup_enabled": False}
    assert client.ensure_domain("acme-mail.example", fields) == "created"
    writes = len(fake.writes())
    assert client.ensure_domain("acme-mail.example", fields) == "unchanged"
    assert len(fake.writes()) == writes  # a GET, nothing else
    assert client.ensure_domain("acme-mail.example", {**fields, "max_users": 10}) == "updated"
    assert fake.domains["acme-mail.example"]["max_users"] == 10
    (patch,) = [w for w in fake.writes() if w.method == "PATCH"]
    assert patch.payload == {"max_users": 10}  # only what differs
    assert client.get_domain("acme-mail.example")["dns_mx"].endswith("MX 10 mail.example.test.")
    assert client.delete_domain("acme-mail.example") is True
    assert client.delete_domain("acme-mail.example") is False  # 404: already gone


def test_users_passwords_and_fields(client, fake):
    client.ensure_domain("acme-mail.example", {})
    pw = iter(["first-password", "second-password"])
    fields = {"displayed_name": "John Smith", "enabled": True}
    got = client.ensure_user("john@acme-mail.example", fields, password=lambda: next(pw))
    assert got == "created"
    assert fake.login("john@acme-mail.example", "first-password")
    post = next(w for w in fake.writes() if w.method == "POST" and w.path == "/user")
    assert post.payload["raw_password"] == "***"  # the double never keeps it
    n = len(fake.writes())
    assert client.ensure_user("john@acme-mail.example", fields, password=lambda: "x") == (
        "unchanged"
    )
    assert len(fake.writes()) == n
    renamed = {**fields, "displayed_name": "J. Smith"}
    assert client.ensure_user("john@acme-mail.example", renamed, password=lambda: "x") == "updated"
    assert fake.users["john@acme-mail.example"]["displayed_name"] == "J. Smith"
    assert fake.login("john@acme-mail.example", "first-password")  # password untouched
    client.set_password("john@acme-mail.example", "second-password")
    assert fake.login("john@acme-mail.example", "second-password")
    assert not fake.login("john@acme-mail.example", "first-password")
    with pytest.raises(MailuNotFound, match=r"cannot be found"):
        client.set_password("ghost@acme-mail.example", "whatever")
    with pytest.raises(MailuNotFound, match=r"Domain nowhere.example does not exist"):
        client.ensure_user("x@nowhere.example", {}, password=lambda: "p")
    # null is not a string for flask-restx: a validation error, not retried
    with pytest.raises(MailuInvalid, match=r"Input payload validation failed.*displayed_name"):
        client.call(
            "PATCH", "/user/john@acme-mail.example", {"displayed_name": None}, what="user john"
        )
    assert client.delete_user("john@acme-mail.example") is True
    assert client.delete_user("john@acme-mail.example") is False


def test_create_race_409_falls_back_to_update(client, fake):
    """Someone creates the user between our GET and POST: the 409 leads to a PATCH that sets
    our password, so the stored password is the one that works."""
    client.ensure_domain("acme-mail.example", {})
    fake.add_user("jane@acme-mail.example", "made-by-hand")
    fake.inject(404, method="GET", prefix="/user/", body={"code": 404, "message": "not found"})
    got = client.ensure_user(
        "jane@acme-mail.example", {"enabled": True}, password=lambda: "ours-now"
    )
    assert got == "updated"
    assert fake.login("jane@acme-mail.example", "ours-now")
    fake.state.domains["acme-mail.example"]["max_users"] = 1  # full now
    with pytest.raises(MailuConflict, match=r"Too many users"):
        client.ensure_user("third@acme-mail.example", {}, password=lambda: "p")


def test_aliases(client, fake):
    client.ensure_domain("acme-mail.example", {})
    for local in ("john", "sara"):
        client.ensure_user(f"{local}@acme-mail.example", {}, password=lambda: "pw")
    with pytest.raises(MailuNotFound, match=r"ghost@acme-mail.example does not exist"):
        client.ensure_alias("sales@acme-mail.example", ["ghost@acme-mail.example"])
    dests = ["sara@acme-mail.example", "john@acme-mail.example"]
    assert client.ensure_alias("sales@acme-mail.example", dests) == "created"
    assert client.ensure_alias("sales@acme-mail.example", list(reversed(dests))) == "unchanged"
    assert client.ensure_alias("sales@acme-mail.example", dests[:1]) == "updated"
    assert fake.aliases["sales@acme-mail.example"]["destination"] == ["sara@acme-mail.example"]
    assert client.delete_alias("sales@acme-mail.example") is True
    assert client.delete_alias("sales@acme-mail.example") is False


def test_bad_domain_name_quirk_is_an_error(client):
    with pytest.raises(MailuInvalid, match=r"is not a valid domain"):
        client.get_domain("not_a..domain")


def test_retries_5xx_and_429_with_backoff_then_gives_up(client, fake, sleeps):
    fake.inject(503, times=2)
    assert client.domains() == []
    assert sleeps == [0.5, 1.0]
    sleeps.clear()
    fake.inject(429, times=1, body={"message": "Too many attempts from your IP (rate-limit)"})
    assert client.users() == []
    assert sleeps == [0.5]
    sleeps.clear()
    fake.inject(500, times=10, body={"message": "Internal Server Error"})
    with pytest.raises(MailuUnavailable, match=r"HTTP 500: Internal Server Error \(after 3 retr"):
        client.aliases()
    assert sleeps == [0.5, 1.0, 2.0]
    fake.injections.clear()
    # 4xx answers are never retried
    sleeps.clear()
    before = fake.count()
    with pytest.raises(MailuNotFound):
        client.call("DELETE", "/user/nobody@acme-mail.example", what="user nobody")
    assert fake.count() == before + 1 and sleeps == []
    # PATCH of an unknown domain: MailU answers 500 (retried, then a clear error)
    with pytest.raises(MailuUnavailable, match=r"PATCH /domain/nope.example"):
        client.call("PATCH", "/domain/nope.example", {}, what="domain nope.example")


def test_connection_refused_is_retried_then_named(sleeps):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    c = MailuClient(
        f"http://127.0.0.1:{port}/api/v1", TOKEN, server="mx9", sleep=sleeps.append, max_retries=2
    )
    with pytest.raises(MailuConnectionError) as info:
        c.domains()
    assert "mx9" in info.value.message and f"127.0.0.1:{port}" in info.value.message
    assert "mail.api_url" in (info.value.hint or "")
    assert len(sleeps) == 2


def test_wrong_token_is_named_but_never_shown(fake, sleeps):
    wrong = "not-the-token-0123456789abcdef"
    c = MailuClient(fake.url, wrong, server="mx1", sleep=sleeps.append)
    with pytest.raises(MailuAuthError) as info:
        c.domains()
    text = f"{info.value} {info.value.hint} {c!r}"
    assert "HTTP 403" in text and "/servers/mx1/mailu" in text
    assert wrong not in text and TOKEN not in text
    # a lazily read token (the provider's case) is read once, at the first call
    calls = []
    lazy = MailuClient(fake.url, lambda: calls.append(1) or TOKEN, server="mx1")
    assert lazy.domains() == [] and lazy.users() == [] and calls == [1]


def test_not_an_http_url():
    from penguinctl.errors import ProviderError

    with pytest.raises(ProviderError, match=r"not an http"):
        MailuClient("mail.example.com/api/v1", TOKEN, server="mx1")


# -- credentials -------------------------------------------------------------------------------
@pytest.fixture
def keystore(tmp_path):
    from penguinctl.providers.secrets.keystore import KeystoreBackend

    return KeystoreBackend(tmp_path / "ks", key_file=tmp_path / "master.key")


def test_mailu_credentials_generated_once(keystore):
    assert mailu_credentials(keystore, "mx1", tenant="acme", create=False) == {}
    creds = mailu_credentials(keystore, "mx1", tenant="acme", create=True)
    key, token, admin = (creds[f].reveal() for f in ("secret_key", "api_token", "admin_password"))
    assert (len(key) == 16 and key.isupper()) or key.isdigit()
    assert all(ch.isupper() or ch.isdigit() for ch in key)
    assert len(token) >= 32 and len(admin) >= 32 and token != admin
    again = mailu_credentials(keystore, "mx1", tenant="acme", create=True)
    assert again == creds  # never regenerated
    assert mailu_credentials(keystore, "mx1", tenant="acme", create=False) == creds
    assert keystore.list() == ["tenants/acme/servers/mx1/mailu"]
    # a missing field is filled in, the others are kept
    keystore.put("platform/servers/mx2/mailu", {"api_token": "kept-token-value-0123456789abcdef"})
    mx2 = mailu_credentials(keystore, "mx2", tenant="", create=True)
    assert mx2["api_token"].reveal() == "kept-token-value-0123456789abcdef"
    assert set(mx2) >= {"secret_key", "api_token", "admin_password"}
