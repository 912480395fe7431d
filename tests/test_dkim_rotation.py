"""DKIM rotation walked through every phase against a real BIND, with messages signed by the
signing key verified by dkimpy against the published records at each phase.

Time is the product's clock driven through a clock file: it starts at the test process's
``clock.now()`` (so CI's shifted runs move it too) and moves only when a test advances it, so
a loaded machine can never make a key due early."""

from __future__ import annotations

from datetime import timedelta

import dkim
import dns.message
import dns.query
import dns.rcode
import dns.update
import pytest
from bind import BindServer
from clitools import run_inprocess
from secrets_backends import secrets_backend  # noqa: F401

from penguinctl import clock

pytestmark = pytest.mark.clock  # date-sensitive: scripts/test re-runs it under shifted clocks

ZONE = "rot-mail.example"
REVERSE = "2.0.192.in-addr.arpa"
IP = "192.0.2.25"
STEP = 2  # seconds: propagation, retire_after and remove_after in the spec


def _spec(bind: BindServer, *, bits: int = 2048) -> str:
    return (
        bind.spec_head(ip=IP, hostname=f"mail.{ZONE}", ttl=60)
        + f"""\
---
apiVersion: penguinctl/v1
kind: Domain
metadata: {{name: {ZONE}, tenant: acme}}
spec:
  server: mx1
  dns: bind
  dmarc: {{policy: none, rua: dmarc@{ZONE}}}
  dkim: {{rotate_every: 14s, propagation: {STEP}s, retire_after: {STEP}s, remove_after: {STEP}s,
          bits: {bits}}}
"""
    )


@pytest.fixture
def bind(tmp_path):
    with BindServer(tmp_path / "named", [ZONE, REVERSE]) as server:
        upd = dns.update.UpdateMessage(REVERSE, keyring=server.keyring())
        upd.replace("25", 60, "PTR", f"mail.{ZONE}.")
        resp = dns.query.tcp(upd, "127.0.0.1", port=server.port, timeout=5)
        assert resp.rcode() == dns.rcode.NOERROR
        yield server


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, state_url):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    path = tmp_path / "clock"
    clock.FileClock.write(path, clock.now().replace(microsecond=0))
    monkeypatch.setenv("PENGUINCTL_CLOCK_FILE", str(path))
    monkeypatch.chdir(tmp_path)
    run = lambda *args: run_inprocess(capsys, *args)  # noqa: E731
    run.clock = clock.FileClock(path)
    return run


def _advance(cli, seconds: float) -> None:
    clock.FileClock.write(cli.clock.path, cli.clock.now() + timedelta(seconds=seconds))


def _first_selector(cli) -> str:
    return f"pm{cli.clock.now():%Y%m}"


def _secrets():
    """The configured secrets backend (keystore or Vault, see secrets_backends)."""
    import os

    from penguinctl.cli.context import AppContext
    from penguinctl.settings import load_settings

    env = dict(os.environ)
    return AppContext(settings=load_settings(env), env=env).secrets()


MESSAGE = (
    b"From: John <john@" + ZONE.encode() + b">\r\n"
    b"To: lead@example.org\r\n"
    b"Subject: quick question\r\n"
    b"Message-ID: <1@" + ZONE.encode() + b">\r\n"
    b"\r\n"
    b"Hi there, a short note.\r\n"
)


def _sign(selector: str) -> bytes:
    private = _secrets().get(f"tenants/acme/domains/{ZONE}/dkim/{selector}")["private_key"].reveal()
    header = dkim.sign(
        MESSAGE,
        selector.encode(),
        ZONE.encode(),
        private.encode(),
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[b"from", b"to", b"subject", b"message-id"],
    )
    return header + MESSAGE


def _verifies(bind, signed: bytes) -> bool:
    def txt(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        resp = bind.query(name, "TXT")
        for rrset in resp.answer:
            for rr in rrset:
                return b"".join(rr.strings)
        return None

    return bool(dkim.verify(signed, dnsfunc=txt))


def _status(cli) -> dict:
    res = cli("dkim", "status", "-o", "json")
    assert res.code == 0, res.err
    (domain,) = res.json()["domains"]
    return domain


def _phases(cli) -> dict[str, str]:
    return {k["selector"]: k["phase"] for k in _status(cli)["keys"]}


def _rotate(cli, bind, *args: str) -> list[tuple[str, str, str]]:
    res = cli("dkim", "rotate", *args, "--nameserver", f"127.0.0.1:{bind.port}", "-o", "json")
    assert res.code == 0, res.err + res.out
    return [(s["action"], s["selector"], s["result"]) for s in res.json()["steps"]]


def _wait_due(cli) -> None:
    due = min(s["due_in_seconds"] for s in _status(cli)["next"] if s["action"] != "rotate")
    _advance(cli, due + 1.05)  # due_in_seconds is rounded down


def _verify(cli, bind) -> dict:
    res = cli(
        "dns", "verify", ZONE, "--nameserver", f"127.0.0.1:{bind.port}",
        "--resolver", f"127.0.0.1:{bind.port}", "-o", "json",
    )  # fmt: skip
    assert res.code == 0, res.out + res.err
    return res.json()


# The full lifecycle walks through every phase: each secrets backend once, on one state store.
@pytest.mark.parametrize(
    ("state_url", "secrets_backend"),
    [("sqlite", "keystore"), ("postgres", "vault")],
    indirect=True,
)
def test_rotation_through_every_phase(tmp_path, bind, cli, secrets_backend):  # noqa: F811
    spec = tmp_path / "spec.yaml"
    spec.write_text(_spec(bind))
    (tmp_path / "tsig.secret").write_text(bind.secret + "\n")
    assert cli("apply", "-f", spec, "--yes").code == 0
    old = _first_selector(cli)
    assert _phases(cli) == {old: "active"}
    signed_old = _sign(old)
    assert _verifies(bind, signed_old)
    _verify(cli, bind)

    # 1. generated -> published: the new record is answered by the server; old key still signs
    steps = _rotate(cli, bind, ZONE)
    assert [(a, r) for a, _, r in steps] == [("rotate", "done"), ("publish", "done")]
    new = steps[0][1]
    assert new.startswith(old) and new != old
    assert _phases(cli) == {old: "active", new: "published"}
    assert _verifies(bind, signed_old)
    assert _verifies(bind, _sign(new))  # published: a receiver could verify it already
    # nothing else is due until the propagation time passed; running again is a no-op
    assert _rotate(cli, bind, "--all-due") == []
    assert cli("plan", "-f", spec, "--detailed-exitcode").code == 0
    _verify(cli, bind)

    # 2. published -> active, old -> retiring: both keys verify (mail in flight)
    _wait_due(cli)
    assert _rotate(cli, bind, "--all-due") == [("activate", new, "done")]
    assert _phases(cli) == {old: "retiring", new: "active"}
    signed_new = _sign(new)
    assert _verifies(bind, signed_new) and _verifies(bind, signed_old)

    # 3. retiring -> revoked: an empty p= makes the old key fail, the new one still verifies
    _wait_due(cli)
    assert _rotate(cli, bind, "--all-due") == [("revoke", old, "done")]
    assert _phases(cli) == {old: "revoked", new: "active"}
    assert bind_txt(bind, f"{old}._domainkey.{ZONE}") == ["v=DKIM1; k=rsa; p="]
    assert not _verifies(bind, signed_old)
    assert _verifies(bind, signed_new)
    report = _verify(cli, bind)
    dkim_checks = {c["name"]: c for c in report["domains"][0]["checks"] if c["type"] == "DKIM"}
    assert "revoked" in dkim_checks[f"{old}._domainkey"]["detail"]
    assert cli("plan", "-f", spec, "--detailed-exitcode").code == 0

    # 4. revoked -> removed: record deleted, private key destroyed, the resource gone
    _wait_due(cli)
    assert _rotate(cli, bind, "--all-due") == [("remove", old, "done")]
    assert _phases(cli) == {new: "active"}
    assert bind.query(f"{old}._domainkey.{ZONE}", "TXT").rcode() == dns.rcode.NXDOMAIN
    assert _secrets().get(f"tenants/acme/domains/{ZONE}/dkim/{old}") is None
    assert not _verifies(bind, signed_old)
    assert _verifies(bind, signed_new)
    assert cli("plan", "-f", spec, "--detailed-exitcode").code == 0
    _verify(cli, bind)

    # every step is in the audit log, never a key
    audit = cli("state", "audit", "-o", "json")
    actions = [e["action"] for e in audit.json()]
    for action in ("dkim.published", "dkim.activate", "dkim.revoke"):
        assert action in actions
    assert "PRIVATE KEY" not in audit.out

    # the new key is due for rotation after rotate_every: --all-due starts the next one
    (due,) = [s for s in _status(cli)["next"] if s["action"] == "rotate"]
    assert due["selector"] == new
    assert _rotate(cli, bind, "--all-due") == []  # not due yet
    _advance(cli, due["due_in_seconds"] + 1.1)
    steps = _rotate(cli, bind, "--all-due")
    assert [a for a, _, _ in steps][:2] == ["rotate", "publish"]
    third = steps[0][1]
    assert third not in (old, new)


def bind_txt(bind, name: str) -> list[str]:
    answer = bind.query(name, "TXT").answer
    return [b"".join(rr.strings).decode() for rrset in answer for rr in rrset]


def test_publish_waits_until_the_servers_answer(
    tmp_path,
    bind,
    cli,
    monkeypatch,
    secrets_backend,  # noqa: F811
):
    """A server that does not answer the new record yet: the key stays generated, and the next
    run (when it does) resumes and publishes it; the signing key never changes meanwhile."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(_spec(bind))
    (tmp_path / "tsig.secret").write_text(bind.secret + "\n")
    assert cli("apply", "-f", spec, "--yes").code == 0
    # ask a second "server" that is not there: not visible everywhere, so not published
    with BindServer(tmp_path / "other", [ZONE]) as other:
        res = cli(
            "dkim", "rotate", ZONE, "--nameserver", f"127.0.0.1:{bind.port}",
            "--nameserver", f"127.0.0.1:{other.port}", "-o", "json",
        )  # fmt: skip
        assert res.code == 0, res.err
        steps = [(s["action"], s["result"]) for s in res.json()["steps"]]
        assert steps == [("rotate", "done"), ("publish", "waiting")]
        assert "not answered yet" in res.json()["steps"][1]["detail"]
    phases = _phases(cli)
    assert sorted(phases.values()) == ["active", "generated"]
    # the next run, asking the real server only, resumes
    assert [(a, r) for a, _, r in _rotate(cli, bind, ZONE)] == [("publish", "done")]


def test_a_plan_never_drops_the_signing_key(tmp_path, bind, cli, secrets_backend):  # noqa: F811
    spec = tmp_path / "spec.yaml"
    spec.write_text(_spec(bind))
    (tmp_path / "tsig.secret").write_text(bind.secret + "\n")
    assert cli("apply", "-f", spec, "--yes").code == 0
    # A spec change to the key type applies to the next key, not the signing one.
    spec.write_text(_spec(bind, bits=3072))
    plan = cli("plan", "-f", spec, "-o", "json")
    assert plan.code == 0
    assert not [c for c in plan.json()["changes"] if c["resource"].startswith("dkim/")]
    # Deleting the signing key while the domain stays is refused, even with --force.
    first = _first_selector(cli)
    res = cli("destroy", "-f", spec, "--target", f"dkim/{ZONE}/{first}", "--force", "--yes")
    assert res.code == 4
    assert "signs with" in res.err and "dkim rotate" in res.err
    assert _phases(cli) == {first: "active"}
