"""The whole CLI against a real BIND: publish by RFC 2136 with TSIG, drift, converge, destroy."""

from __future__ import annotations

import dns.query
import dns.rdatatype
import dns.update
import pytest
from bind import BindServer
from clitools import run_inprocess

ZONES = ["alpha-mail.example", "beta-mail.example"]


def _spec(bind: BindServer) -> str:
    head = bind.spec_head(ip="192.0.2.25", hostname="mx.acme-infra.example")
    domains = "".join(
        f"""---
apiVersion: penguinctl/v1
kind: Domain
metadata: {{name: {zone}, tenant: acme}}
spec:
  server: mx1
  dns: bind
  dmarc: {{policy: none, rua: dmarc@{zone}}}
  tracking: {{host: track, target: track.penguinctl.example}}
"""
        for zone in ZONES
    )
    return head + domains


@pytest.fixture
def bind(tmp_path):
    with BindServer(tmp_path / "named", ZONES) as server:
        yield server


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, state_url):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    return lambda *args: run_inprocess(capsys, *args)


def _txt(bind, name: str) -> list[str]:
    answer = bind.query(name, "TXT").answer
    return [b"".join(rr.strings).decode() for rrset in answer for rr in rrset]


def test_publish_drift_converge_destroy(tmp_path, bind, cli):
    spec = tmp_path / "spec.yaml"
    spec.write_text(_spec(bind))
    (tmp_path / "tsig.secret").write_text(bind.secret + "\n")

    res = cli("apply", "-f", spec, "--yes", "-o", "json")
    assert res.code == 0, res.err
    for zone in ZONES:
        assert _txt(bind, zone) == ["v=spf1 ip4:192.0.2.25 ~all"]
        (dkim,) = _txt(bind, f"pm202611._domainkey.{zone}")
        assert dkim.startswith("v=DKIM1; k=rsa; p=MII")
        mx = bind.query(zone, "MX").answer[0]
        assert [rr.to_text() for rr in mx] == ["10 mx.acme-infra.example."]
    assert cli("plan", "-f", spec, "--detailed-exitcode").code == 0

    # An out-of-band edit shows up as drift and is repaired.
    upd = dns.update.UpdateMessage(ZONES[0], keyring=bind.keyring())
    upd.replace("_dmarc", 300, "TXT", '"v=DMARC1; p=reject"')
    dns.query.tcp(upd, "127.0.0.1", port=bind.port, timeout=5)
    plan = cli("plan", "-f", spec, "-o", "json", "--detailed-exitcode")
    assert plan.code == 2
    (change,) = plan.json()["changes"]
    assert change["action"] == "update" and change["resource"].endswith("/_dmarc/TXT")
    assert cli("apply", "-f", spec, "--yes").code == 0
    assert _txt(bind, f"_dmarc.{ZONES[0]}") == [f"v=DMARC1; p=none; rua=mailto:dmarc@{ZONES[0]}"]

    # The TSIG secret never reaches the state store or the output.
    out = cli("describe", "dnsprovider", "bind", "-o", "json")
    assert out.code == 0 and bind.secret not in out.out
    assert out.json()["data"]["tsig"]["secret"] == f"file:{(tmp_path / 'tsig.secret').resolve()}"

    res = cli("destroy", "-f", spec, "--yes", "--force")
    assert res.code == 0, res.err
    for zone in ZONES:
        assert _txt(bind, zone) == []
        assert bind.query(zone, "SOA").answer, "SOA must be left alone"


def test_wrong_tsig_secret_is_a_provider_error(tmp_path, bind, cli):
    spec = tmp_path / "spec.yaml"
    spec.write_text(_spec(bind))
    (tmp_path / "tsig.secret").write_text("d3JvbmctYnV0LXZhbGlkLWJhc2U2NC1rZXktbWF0ZXJpYWw=\n")
    res = cli("apply", "-f", spec, "--yes")
    assert res.code in (5, 6), res.err
    assert "d3JvbmctYnV0" not in res.err and bind.secret not in res.err
    assert "Traceback" not in res.err
