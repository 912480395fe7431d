"""End-to-end: the quickstart on both state backends, through the real CLI entry point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dns.zone
import pytest
from clitools import QUICKSTART, run_inprocess
from daemons import checkzone
from secrets_backends import secrets_backend  # noqa: F401

QUICKSTART_DOMAINS = ["acme-growth.example", "acme-mail.example", "acme-outreach.example"]


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, state_url):
    home = tmp_path / "home"
    monkeypatch.setenv("PENGUINCTL_HOME", str(home))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    monkeypatch.delenv("PENGUINCTL_MASTER_KEY", raising=False)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")

    def run(*args):
        return run_inprocess(capsys, *args)

    run.home = home
    return run


def test_quickstart_applies_then_converges(cli, secrets_backend):  # noqa: F811
    assert cli("init").code == 0
    first = cli("apply", "-f", QUICKSTART, "--yes", "-o", "json")
    assert first.code == 0, first.err
    report = first.json()
    assert report["status"] == "ok"
    # 1 tenant, 1 server, 1 dns provider, 3 domains, 4 mailboxes, 3 dkim keys, records
    assert report["applied"]["create"] > 12

    zones = cli.home / "zones"
    assert sorted(p.name for p in zones.iterdir()) == [f"{d}.zone" for d in QUICKSTART_DOMAINS]
    for domain in QUICKSTART_DOMAINS:
        path = zones / f"{domain}.zone"
        zone = dns.zone.from_file(str(path), origin=domain, relativize=False)
        assert zone.get_rdataset(f"{domain}.", "MX") is not None
        dkim = zone.get_rdataset(f"pm202611._domainkey.{domain}.", "TXT")
        assert dkim is not None and len(dkim) == 1  # one RR, several strings
        (rr,) = list(dkim)
        assert len(rr.strings) >= 2 and all(len(s) <= 255 for s in rr.strings)
        assert b"".join(rr.strings).startswith(b"v=DKIM1; k=rsa; p=MII")
        checkzone(domain, path)

    before = {p.name: p.read_bytes() for p in zones.iterdir()}
    second = cli("apply", "-f", QUICKSTART, "--yes")
    assert second.code == 0, second.err
    assert "No changes" in second.out
    assert {p.name: p.read_bytes() for p in zones.iterdir()} == before

    plan = cli("plan", "-f", QUICKSTART, "--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out
    # the DKIM private keys are in the configured backend (keystore or Vault), only there
    assert secrets_backend.stored() == [
        f"tenants/acme/domains/{d}/dkim/pm202611" for d in QUICKSTART_DOMAINS
    ]
    if secrets_backend.vault is not None:
        assert not (cli.home / "keystore").exists()


def test_plan_detailed_exitcode_and_saved_plan_checksum(cli, tmp_path):
    planfile = tmp_path / "plan.json"
    res = cli("plan", "-f", QUICKSTART, "--detailed-exitcode", "--out", planfile)
    assert res.code == 2, res.err
    assert planfile.exists()

    # A change after the plan was reviewed: the saved plan no longer applies.
    spec = tmp_path / "spec.yaml"
    spec.write_text(QUICKSTART.read_text().replace("daily_limit: 30", "daily_limit: 35"))
    res = cli("plan", "-f", spec, "--out", planfile)
    spec.write_text(QUICKSTART.read_text())
    res = cli("apply", "--plan", planfile, "--yes")
    assert res.code == 7, res.err
    assert "no longer matches" in res.err

    res = cli("plan", "-f", spec, "--out", planfile)
    res = cli("apply", "--plan", planfile)
    assert res.code == 0, res.err
    assert cli("plan", "-f", spec, "--detailed-exitcode").code == 0


def test_removing_a_domain_needs_force_and_destroy_cleans_up(
    cli,
    tmp_path,
    secrets_backend,  # noqa: F811
):
    assert cli("apply", "-f", QUICKSTART, "--yes").code == 0
    text = QUICKSTART.read_text()
    start = text.index("apiVersion: penguinctl/v1\nkind: Domain\nmetadata: {name: acme-outreach")
    end = text.index("---", start)
    spec = tmp_path / "two.yaml"
    spec.write_text(text[:start] + text[end + 4 :])

    res = cli("apply", "-f", spec, "--yes")
    assert res.code == 4, res.err
    assert "domain/acme-outreach.example" in res.err and "--force" in res.err
    assert (cli.home / "zones" / "acme-outreach.example.zone").exists()

    res = cli("apply", "-f", spec, "--yes", "--force", "-o", "json")
    assert res.code == 0, res.err
    assert not (cli.home / "zones" / "acme-outreach.example.zone").exists()
    keys = cli("get", "dkim", "-o", "json").json()
    assert {k["domain"] for k in keys} == {"acme-mail.example", "acme-growth.example"}
    assert not [p for p in secrets_backend.stored() if "acme-outreach" in p]

    res = cli("destroy", "-f", spec, "--yes")
    assert res.code == 4
    res = cli("destroy", "-f", spec, "--yes", "--force")
    assert res.code == 0, res.err
    assert list((cli.home / "zones").iterdir()) == []
    assert cli("get", "domains", "-o", "json").json() == []
    assert list((cli.home / "keystore").rglob("*.secret")) == []
    assert secrets_backend.stored() == []  # every private key destroyed, in Vault too


def test_target_limits_the_work(cli):
    res = cli("apply", "-f", QUICKSTART, "--yes", "--target", "domain/acme-mail.example")
    assert res.code == 0, res.err
    assert sorted(p.name for p in (cli.home / "zones").iterdir()) == ["acme-mail.example.zone"]
    plan = cli("plan", "-f", QUICKSTART, "-o", "json").json()
    resources = [c["resource"] for c in plan["changes"]]
    assert resources and not any("acme-mail.example" in r for r in resources)
    assert plan["counts"]["delete"] == 0


def test_read_commands(cli):
    assert cli("apply", "-f", QUICKSTART, "--yes").code == 0
    domains = cli("get", "domains", "-o", "json").json()
    assert sorted(d["name"] for d in domains) == QUICKSTART_DOMAINS
    tenants = cli("get", "tenants", "-o", "yaml")
    assert "name: acme" in tenants.out
    desc = cli("describe", "domain", "acme-mail.example", "-o", "json").json()
    assert desc["data"]["server"] == "mx1"
    assert [k["selector"] for k in desc["dkim"]] == ["pm202611"]
    assert sorted(desc["mailboxes"]) == ["john@acme-mail.example", "sara@acme-mail.example"]
    recs = cli("dns", "records", "acme-mail.example", "-o", "json").json()
    by = {(r["name"], r["type"]): r["values"] for r in recs}
    assert by[("@", "MX")] == ["10 mail.acme-mail.example."]
    assert by[("@", "TXT")] == ["v=spf1 ip4:203.0.113.7 ip6:2001:db8::7 ~all"]
    assert by[("_dmarc", "TXT")] == ["v=DMARC1; p=none; rua=mailto:dmarc@acme-mail.example"]
    assert by[("mail", "A")] == ["203.0.113.7"]
    assert by[("track", "CNAME")] == ["track.penguinctl.example."]
    text = cli("dns", "records", "acme-mail.example")
    assert text.code == 0 and "_dmarc" in text.out

    exported = cli("dns", "export", "--format", "zonefile", "acme-mail.example")
    assert exported.code == 0
    zone = dns.zone.from_text(exported.out, origin="acme-mail.example", relativize=False)
    assert zone.get_rdataset("acme-mail.example.", "MX") is not None

    history = cli("state", "history", "-o", "json").json()
    assert history[0]["status"] == "ok" and history[0]["operation"] == "apply"
    events = cli("state", "audit", "-o", "json", "--limit", "1000").json()
    assert {e["result"] for e in events} == {"ok"}
    assert any(e["resource"] == "domain/acme/acme-mail.example" for e in events)
    assert cli("describe", "domain", "nope.example").code == 2
    assert cli("get", "widgets").code == 2


def test_invalid_spec_writes_nothing(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(QUICKSTART.read_text().replace("server: mx1", "server: mx9", 1))
    res = cli("apply", "-f", bad, "--yes")
    assert res.code == 3
    assert "mx9" in res.err and "bad.yaml:" in res.err
    assert "Traceback" not in res.err
    assert not (cli.home / "zones").exists()
    res = cli("get", "domains", "-o", "json")  # nothing written, not even a state
    assert res.code == 2 and "no state store yet" in res.err


def test_dmarc_reject_on_a_young_domain_needs_force(cli, tmp_path, monkeypatch):
    assert cli("apply", "-f", QUICKSTART, "--yes").code == 0
    spec = tmp_path / "reject.yaml"
    spec.write_text(
        QUICKSTART.read_text().replace(
            "dmarc: {policy: none, rua: dmarc@acme-mail.example}\n  tracking",
            "dmarc: {policy: reject, rua: dmarc@acme-mail.example}\n  tracking",
        )
    )
    res = cli("apply", "-f", spec, "--yes")
    assert res.code == 4, res.err
    assert "p=reject on domain/acme-mail.example" in res.err
    # 30 days after the domain was first applied (by the real clock) the same change is safe
    later = datetime.now(UTC).date() + timedelta(days=31)
    monkeypatch.setenv("PENGUINCTL_TODAY", later.isoformat())
    res = cli("plan", "-f", spec, "-o", "json")
    assert res.json()["unsafe"] == []
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    res = cli("apply", "-f", spec, "--yes", "--force")
    assert res.code == 0, res.err
    recs = cli("dns", "records", "acme-mail.example", "-o", "json").json()
    dmarc = next(r for r in recs if r["name"] == "_dmarc")
    assert dmarc["values"] == ["v=DMARC1; p=reject; rua=mailto:dmarc@acme-mail.example"]


def test_dependency_cycles_are_found_whatever_the_kinds() -> None:
    """The engine's cycle check: edges to earlier kinds pass the cheap check; anything else
    (same kind, unknown kinds) goes through the full sort, which finds a real cycle."""
    from types import SimpleNamespace

    import pytest

    from penguinctl.engine import Engine
    from penguinctl.errors import PenguinError
    from penguinctl.resources import Resource, ResourceKey

    t, d = ResourceKey("tenant", "a", "a"), ResourceKey("domain", "a", "x.example")
    r1, r2 = ResourceKey("dnsrecord", "a", "x/@/MX"), ResourceKey("dnsrecord", "a", "x/@/TXT")
    engine = SimpleNamespace(desired={t: Resource(t, {}), d: Resource(d, {}, depends_on=(t,))})
    Engine._check_graph(engine)  # type: ignore[arg-type]
    engine.desired[r1] = Resource(r1, {}, depends_on=(d, r2))
    engine.desired[r2] = Resource(r2, {}, depends_on=(d,))
    Engine._check_graph(engine)  # type: ignore[arg-type]  same kind, no cycle
    engine.desired[r2] = Resource(r2, {}, depends_on=(r1,))
    with pytest.raises(PenguinError, match="cycle"):
        Engine._check_graph(engine)  # type: ignore[arg-type]
