"""`dns verify` against a real BIND: ok, drift of every kind, --wait, JSON, exit codes."""

from __future__ import annotations

import threading
import time

import dns.query
import dns.rcode
import dns.update
import pytest
from bind import BindServer
from clitools import run_inprocess

from penguinctl.dns.query import Answer, Nameserver
from penguinctl.dns.verify import compare
from penguinctl.errors import UsageError

ZONES = ["alpha-mail.example", "beta-mail.example"]
REVERSE = "2.0.192.in-addr.arpa"
IP = "192.0.2.25"


def _spec(bind: BindServer) -> str:
    head = bind.spec_head(ip=IP, hostname=f"mail.{ZONES[0]}")
    return head + "".join(
        f"""---
apiVersion: penguinctl/v1
kind: Domain
metadata: {{name: {zone}, tenant: acme}}
spec:
  server: mx1
  dns: bind
  dmarc: {{policy: none, rua: dmarc@{zone}}}
"""
        for zone in ZONES
    )


@pytest.fixture
def bind(tmp_path):
    with BindServer(tmp_path / "named", [*ZONES, REVERSE]) as server:
        _update(server, REVERSE, lambda u: u.replace("25", 60, "PTR", f"mail.{ZONES[0]}."))
        yield server


def _update(server, zone, edit) -> None:
    upd = dns.update.UpdateMessage(zone, keyring=server.keyring())
    edit(upd)
    resp = dns.query.tcp(upd, "127.0.0.1", port=server.port, timeout=5)
    assert resp.rcode() == dns.rcode.NOERROR


@pytest.fixture
def applied(tmp_path, bind, monkeypatch, capsys, state_url):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(_spec(bind))
    (tmp_path / "tsig.secret").write_text(bind.secret + "\n")

    def cli(*args):
        return run_inprocess(capsys, *args)

    assert cli("apply", "-f", spec, "--yes").code == 0
    return cli


def _verify(cli, bind, *args):
    where = f"127.0.0.1:{bind.port}"
    return cli("dns", "verify", *args, "--resolver", where, "-o", "json")


def _checks(result, domain) -> dict[tuple[str, str], dict]:
    (rep,) = [d for d in result.json()["domains"] if d["domain"] == domain]
    return {(c["name"], c["type"]): c for c in rep["checks"]}


def test_everything_ok_after_apply(applied, bind):
    res = _verify(applied, bind, "--all")
    assert res.code == 0, res.out + res.err
    data = res.json()
    assert data["ok"] is True
    assert [d["domain"] for d in data["domains"]] == ZONES
    checks = _checks(res, ZONES[0])
    assert {k[1] for k in checks} >= {"MX", "A", "SPF", "DKIM", "DMARC", "PTR"}
    assert all(c["status"] == "ok" for c in checks.values())
    assert checks[(IP, "PTR")]["detail"] == "forward-confirmed"
    # the rfc2136 provider's server is the authoritative one asked by default
    assert data["domains"][0]["servers"] == [f"127.0.0.1:{bind.port}"]
    # text output: one line when all is well
    text = applied("dns", "verify", "--all", "--resolver", f"127.0.0.1:{bind.port}")
    assert text.code == 0 and "All 2 domain(s) verified" in text.out


def test_drift_of_every_kind_is_reported(applied, bind):
    zone = ZONES[0]

    def edit(u):
        u.add("@", 60, "TXT", '"v=spf1 include:other.example -all"')  # a second SPF record
        u.replace("_dmarc", 60, "TXT", '"v=DMARC1; p=reject"')  # changed
        u.delete("@", "MX")  # gone

    _update(bind, zone, edit)
    _update(bind, REVERSE, lambda u: u.replace("25", 60, "PTR", "elsewhere.example."))
    res = _verify(applied, bind, zone)
    assert res.code == 5
    assert "not as expected" in res.err
    checks = _checks(res, zone)
    assert checks[("@", "SPF")]["status"] == "unexpected"
    assert "2 SPF records" in checks[("@", "SPF")]["detail"]
    assert checks[("_dmarc", "DMARC")]["status"] == "mismatch"
    assert checks[("_dmarc", "DMARC")]["found"] == ["v=DMARC1; p=reject"]
    assert checks[("@", "MX")]["status"] == "missing"
    assert checks[(IP, "PTR")]["status"] == "mismatch"
    # the other domain is unaffected except for the shared sending IP's reverse DNS
    other = _checks(_verify(applied, bind, ZONES[1], "--no-fcrdns"), ZONES[1])
    assert all(c["status"] == "ok" for c in other.values())


def test_a_key_swapped_in_the_secrets_backend_is_invalid(applied, bind):
    from penguinctl.dkim import generate_rsa
    from penguinctl.providers.secrets.keystore import KeystoreBackend
    from penguinctl.settings import load_settings

    s = load_settings()
    secrets = KeystoreBackend(s.keystore_dir, key_file=s.master_key_file, master_key=s.master_key)
    pair = generate_rsa(2048)
    secrets.put(
        f"tenants/acme/domains/{ZONES[1]}/dkim/pm202611",
        {"private_key": pair.private_pem, "public_key": pair.public_b64},
    )
    res = _verify(applied, bind, ZONES[1], "--no-fcrdns")
    assert res.code == 5
    check = _checks(res, ZONES[1])[("pm202611._domainkey", "DKIM")]
    assert check["status"] == "invalid"
    assert "not the key in the secrets backend" in check["detail"]
    assert "PRIVATE" not in res.out + res.err


def test_wait_polls_until_propagated(applied, bind):
    zone = ZONES[1]
    _update(bind, zone, lambda u: u.delete("_dmarc", "TXT"))
    expected = f"v=DMARC1; p=none; rua=mailto:dmarc@{zone}"

    def fix_later():
        time.sleep(1.5)
        _update(bind, zone, lambda u: u.replace("_dmarc", 60, "TXT", f'"{expected}"'))

    fixer = threading.Thread(target=fix_later)
    fixer.start()
    try:
        res = _verify(applied, bind, zone, "--no-fcrdns", "--wait", "30s", "--interval", "1s")
    finally:
        fixer.join()
    assert res.code == 0, res.out + res.err
    assert _checks(res, zone)[("_dmarc", "DMARC")]["status"] == "ok"


def test_wait_gives_up_after_the_deadline(applied, bind):
    _update(bind, ZONES[1], lambda u: u.delete("_dmarc", "TXT"))
    started = time.monotonic()
    res = _verify(applied, bind, ZONES[1], "--no-fcrdns", "--wait", "2s", "--interval", "1s")
    assert res.code == 5
    assert time.monotonic() - started >= 1.0  # it did poll
    assert _checks(res, ZONES[1])[("_dmarc", "DMARC")]["status"] == "missing"


def test_unreachable_server_is_an_error_not_a_hang(applied, bind, tmp_path):
    with BindServer(tmp_path / "other", ["unrelated.example"]) as other:
        res = _verify(
            applied, bind, ZONES[0], "--no-fcrdns", "--nameserver", f"127.0.0.1:{other.port}"
        )
    assert res.code == 5
    statuses = {c["status"] for c in _checks(res, ZONES[0]).values()}
    assert statuses == {"error"}  # REFUSED: that server does not serve the zone


def test_usage_errors(applied, bind):
    assert applied("dns", "verify").code == 2
    res = applied("dns", "verify", "nope.example")
    assert res.code == 2 and "not a recorded domain" in res.err
    assert applied("dns", "verify", ZONES[0], "--wait", "soon").code == 2


# -- units ---------------------------------------------------------------------------------------
def test_compare_statuses():
    spf = "v=spf1 ip4:192.0.2.1 ~all"
    assert compare("SPF", [spf], Answer("NOERROR", (spf, "google-site-verification=x"))).ok
    assert compare("SPF", [spf], Answer("NOERROR", ("other=1",))).status == "missing"
    assert compare("SPF", [spf], Answer("NOERROR", ("v=spf1 -all",))).status == "mismatch"
    assert compare("MX", ["10 a."], Answer("NOERROR", ("10 a.", "20 b."))).status == "unexpected"
    assert compare("MX", ["10 a."], Answer("NXDOMAIN")).status == "missing"
    assert compare("MX", ["10 a."], Answer("NODATA")).status == "missing"
    assert compare("MX", ["10 a."], Answer("ERROR", error="REFUSED")).status == "error"


def test_nameserver_parsing():
    assert Nameserver.parse("127.0.0.1:5353") == Nameserver("127.0.0.1", 5353)
    assert Nameserver.parse("127.0.0.2") == Nameserver("127.0.0.2", 53)
    assert Nameserver.parse("[::1]:5300") == Nameserver("::1", 5300)
    assert Nameserver.parse("::1") == Nameserver("::1", 53)
    assert str(Nameserver("127.0.0.1", 5353)) == "127.0.0.1:5353"
    for bad in ("127.0.0.1:0", "127.0.0.1:x", "", "[::1]:99999"):
        with pytest.raises(UsageError):
            Nameserver.parse(bad)


def test_spf_over_ten_lookups_through_includes_is_invalid():
    from penguinctl.dns.verify import Check, Expectation, Verifier

    chain = {f"l{i}.example.net": [f"v=spf1 include:l{i + 1}.example.net ~all"] for i in range(12)}
    chain["l12.example.net"] = ["v=spf1 ip4:198.51.100.1 -all"]

    class StubResolver:
        def txt(self, name):
            return chain.get(name.rstrip("."), [])

    value = "v=spf1 ip4:192.0.2.1 include:l0.example.net ~all"
    check = Check("@", "SPF", "ok", [value], [value])
    exp = Expectation(domain="acme.example", records=[], servers=[])
    Verifier(StubResolver())._content(check, exp)
    assert check.status == "invalid"
    assert "lookups" in check.detail and "10" in check.detail


def test_zonefile_zones_without_name_servers_fail_fast(tmp_path, monkeypatch, capsys, state_url):
    """The default zonefile provider names only .invalid servers: verify says what to pass
    instead of waiting on resolver timeouts."""
    from clitools import QUICKSTART

    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    assert run_inprocess(capsys, "apply", "-f", QUICKSTART, "--yes").code == 0
    started = time.monotonic()
    res = run_inprocess(capsys, "dns", "verify", "--all", "--no-fcrdns", "-o", "json")
    assert res.code == 5
    assert time.monotonic() - started < 5
    for domain in res.json()["domains"]:
        (check,) = domain["checks"]
        assert check["status"] == "error" and "--nameserver" in check["detail"]
