"""The whole CLI against the Cloudflare API double: token from a secret ref, drift, destroy."""

from __future__ import annotations

import pytest
from clitools import run_inprocess
from fakes.cloudflare import FakeCloudflare

TOKEN = "cf-test-token-0123456789abcdef"
ZONES = ("gamma-mail.example", "delta-mail.example")

SPEC = """\
apiVersion: penguinctl/v1
kind: Tenant
metadata: {name: acme}
---
apiVersion: penguinctl/v1
kind: Server
metadata: {name: mx1, tenant: acme}
spec: {provider: external, external: {ips: [192.0.2.30]}, hostname: mx.acme-infra.example}
---
apiVersion: penguinctl/v1
kind: DnsProvider
metadata: {name: cf, tenant: acme}
spec: {type: cloudflare, api_token: "env:TEST_CF_TOKEN"}
""" + "".join(
    f"""---
apiVersion: penguinctl/v1
kind: Domain
metadata: {{name: {zone}, tenant: acme}}
spec: {{server: mx1, dns: cf, dmarc: {{policy: none, rua: dmarc@{zone}}}}}
"""
    for zone in ZONES
)


@pytest.fixture
def cloudflare():
    with FakeCloudflare(token=TOKEN, zones=ZONES) as server:
        yield server


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, cloudflare):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    monkeypatch.setenv("CLOUDFLARE_API_URL", cloudflare.url)
    monkeypatch.setenv("TEST_CF_TOKEN", TOKEN)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)

    def run(*args):
        return run_inprocess(capsys, *args)

    run.spec = spec
    return run


def _apex_txt(cloudflare, zone):
    return [r["content"] for r in cloudflare.dump(zone) if r["type"] == "TXT" and r["name"] == zone]


def test_publish_drift_destroy(cli, cloudflare):
    res = cli("apply", "-f", cli.spec, "--yes")
    assert res.code == 0, res.err
    for zone in ZONES:
        assert _apex_txt(cloudflare, zone) == ['"v=spf1 ip4:192.0.2.30 ~all"']
        assert any(r["name"] == f"pm202611._domainkey.{zone}" for r in cloudflare.dump(zone))
    assert cli("plan", "-f", cli.spec, "--detailed-exitcode").code == 0

    (spf,) = [r for r in cloudflare.dump(ZONES[0]) if r["type"] == "TXT" and r["name"] == ZONES[0]]
    cloudflare.edit_record(ZONES[0], spf["id"], content='"v=spf1 -all"')
    assert cli("plan", "-f", cli.spec, "--detailed-exitcode").code == 2
    assert cli("apply", "-f", cli.spec, "--yes").code == 0
    assert _apex_txt(cloudflare, ZONES[0]) == ['"v=spf1 ip4:192.0.2.30 ~all"']

    res = cli("destroy", "-f", cli.spec, "--yes", "--force")
    assert res.code == 0, res.err
    assert all(cloudflare.dump(zone) == [] for zone in ZONES)


def test_missing_or_wrong_token(cli, monkeypatch):
    monkeypatch.delenv("TEST_CF_TOKEN")
    res = cli("plan", "-f", cli.spec)
    assert res.code == 5 and "TEST_CF_TOKEN is not set" in res.err
    monkeypatch.setenv("TEST_CF_TOKEN", "wrong-token-value")
    res = cli("apply", "-f", cli.spec, "--yes")
    assert res.code in (5, 6), res.err
    assert "wrong-token-value" not in res.err and TOKEN not in res.err
    assert "Traceback" not in res.err
