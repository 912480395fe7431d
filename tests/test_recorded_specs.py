"""Recorded specs (issue 19 §1): every apply records its documents per tenant (normalised,
content-hashed, secret fields as references), `state specs` shows and exports them, jobs load
them back without -f, destroy forgets them; a tenant's recorded set never includes another's."""

from __future__ import annotations

import pytest
from clitools import agency_spec, run_inprocess

SECRETS_SPEC = """\
apiVersion: penguinctl/v1
kind: Tenant
metadata: {name: beta}
spec: {plan: business}
---
apiVersion: penguinctl/v1
kind: DnsProvider
metadata: {name: beta-zones, tenant: beta}
spec: {type: zonefile, directory: ./zones-beta}
---
apiVersion: penguinctl/v1
kind: Server
metadata: {name: beta-mx, tenant: beta}
spec:
  provider: external
  external: {ips: [192.0.2.20]}
  hostname: mx.beta-mail.example
  backup: weekly
---
apiVersion: penguinctl/v1
kind: BackupPolicy
metadata: {name: weekly, tenant: beta}
spec: {schedule: "0 4 * * 0"}
---
apiVersion: penguinctl/v1
kind: Schedule
metadata: {name: beta-jobs, tenant: beta}
spec:
  jobs:
    check: {schedule: "*/5 * * * *"}
    drift: {enabled: false}
---
apiVersion: penguinctl/v1
kind: Domain
metadata: {name: beta-mail.example, tenant: beta}
spec:
  server: beta-mx
  dns: beta-zones
  mailboxes:
    - {local: ann, password: "file:./secrets/ann.txt"}
"""


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, state_url):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    monkeypatch.chdir(tmp_path)
    return lambda *a: run_inprocess(capsys, *a)


def _docs(cli, *args) -> list[dict]:
    res = cli("state", "specs", *args, "-o", "json")
    assert res.code == 0, res.err
    return res.json()["documents"]


def test_apply_records_normalised_documents_and_export_round_trips(cli, tmp_path) -> None:
    (tmp_path / "agency.yaml").write_text(agency_spec(3))
    (tmp_path / "beta.yaml").write_text(SECRETS_SPEC)
    assert cli("apply", "-f", "agency.yaml", "--yes").code == 0
    assert cli("apply", "-f", "beta.yaml", "--yes").code == 0

    agency = _docs(cli, "agency")
    assert {(d["kind"], d["name"]) for d in agency} == {
        ("Tenant", "agency"), ("Server", "shared-mx"), ("DnsProvider", "zones"),
        *(("Domain", f"client{i:05d}.example") for i in range(3)),
    }  # fmt: skip
    assert all(d["tenant"] == "agency" and d["run_id"] for d in agency)  # the applying run
    beta = {(d["kind"], d["name"]): d for d in _docs(cli, "beta")}
    assert {d["tenant"] for d in beta.values()} == {"beta"}  # never another tenant's documents
    domain = beta[("Domain", "beta-mail.example")]["document"]
    # normalised: defaults written out, a relative file: reference made absolute (a reference,
    # never the secret), the zone directory absolute
    password = domain["spec"]["mailboxes"][0]["password"]
    assert password == f"file:{tmp_path / 'secrets' / 'ann.txt'}"
    assert domain["spec"]["dkim"]["rotate_every"] == "180d"
    zones = beta[("DnsProvider", "beta-zones")]["document"]["spec"]["directory"]
    assert zones == str(tmp_path / "zones-beta")
    assert beta[("Schedule", "beta-jobs")]["document"]["spec"]["jobs"]["check"] == {
        "schedule": "*/5 * * * *", "enabled": True,
    }  # fmt: skip

    # exported files are valid specs that plan to no change and hash the same when re-applied
    assert cli("state", "specs", "--export", "exported").code == 0
    assert sorted(p.name for p in (tmp_path / "exported").iterdir()) == ["agency.yaml", "beta.yaml"]
    assert cli("plan", "-f", "exported", "--detailed-exitcode").code == 0
    before = {(d["tenant"], d["kind"], d["name"]): d["sha256"] for d in _docs(cli)}
    assert cli("apply", "-f", "exported/beta.yaml", "--yes").code == 0  # no change: still recorded
    after = {(d["tenant"], d["kind"], d["name"]): d["sha256"] for d in _docs(cli)}
    assert after == before


def test_a_tenant_apply_replaces_its_set_and_destroy_forgets(cli, tmp_path) -> None:
    from penguinctl.control import specs
    from penguinctl.settings import load_settings
    from penguinctl.state.db import make_engine

    (tmp_path / "a.yaml").write_text(agency_spec(3))
    (tmp_path / "b.yaml").write_text(SECRETS_SPEC)
    assert cli("apply", "-f", "a.yaml", "--yes").code == 0
    assert cli("apply", "-f", "b.yaml", "--yes").code == 0
    (tmp_path / "a.yaml").write_text(agency_spec(2))  # client00002 removed from the spec
    assert cli("apply", "-f", "a.yaml", "--yes", "--force").code == 0
    names = {d["name"] for d in _docs(cli, "agency") if d["kind"] == "Domain"}
    assert names == {"client00000.example", "client00001.example"}

    engine = make_engine(load_settings().state_url)
    try:
        loaded = specs.load(engine, ["beta"])  # what a job plans from: beta's only
        assert set(loaded.domains) == {"beta-mail.example"}
        assert set(loaded.backup_policies) == {"weekly"}
        assert loaded.backup_policies["weekly"].spec.schedule == "0 4 * * 0"
        assert cli("destroy", "-f", "b.yaml", "--yes", "--force").code == 0
        assert _docs(cli, "agency") and all(d["tenant"] == "agency" for d in _docs(cli))
        res = cli("state", "specs", "beta")
        assert res.code == 2 and "no spec recorded for tenant beta" in res.err
        from penguinctl.errors import NotFound

        with pytest.raises(NotFound):
            specs.load(engine, ["beta"])
    finally:
        engine.dispose()
