"""`domains transfer DOMAIN --to TENANT`: the domain moves with its DKIM key, records and
mailboxes (nothing re-created), audited and with an event for each side; refused for a tenant
that does not exist or whose plan is full; afterwards the old tenant's spec may not name it."""

from __future__ import annotations

import json
import os

import pytest
import sqlalchemy as sa
from clitools import run_inprocess

SHARED = """\
apiVersion: penguinctl/v1
kind: Server
metadata: {name: shared-mx}
spec:
  provider: external
  external: {ips: [192.0.2.25]}
  hostname: mx.platform-mail.example
"""


def tenant_spec(tenant: str, plan: str, domains: list[str]) -> str:
    docs = [
        f"apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {{name: {tenant}}}\n"
        f"spec: {{plan: {plan}}}\n",
        "apiVersion: penguinctl/v1\nkind: DnsProvider\n"
        f"metadata: {{name: zones, tenant: {tenant}}}\nspec: {{type: zonefile}}\n",
        SHARED,
    ]
    for d in domains:
        docs.append(
            f"apiVersion: penguinctl/v1\nkind: Domain\nmetadata: {{name: {d}, tenant: {tenant}}}\n"
            f"spec:\n  server: shared-mx\n  dns: zones\n  dmarc: {{policy: none, rua: dmarc@{d}}}\n"
            "  mailboxes:\n    - {local: john, display_name: John, daily_limit: 30}\n"
        )
    return "---\n".join(docs)


@pytest.fixture
def world(tmp_path, monkeypatch, capsys, state_url):
    home = tmp_path / "home"
    monkeypatch.setenv("PENGUINCTL_HOME", str(home))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    monkeypatch.delenv("PENGUINCTL_MASTER_KEY", raising=False)
    monkeypatch.delenv("PENGUINCTL_SECRETS", raising=False)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")

    def run(*args):
        return run_inprocess(capsys, *args)

    assert run("init").code == 0
    (tmp_path / "acme.yaml").write_text(tenant_spec("acme", "business", ["acme-mail.example"]))
    (tmp_path / "beta.yaml").write_text(tenant_spec("beta", "starter", ["beta-mail.example"]))
    for name in ("acme", "beta"):
        res = run("apply", "-f", tmp_path / f"{name}.yaml", "--yes")
        assert res.code == 0, res.err
    run.home, run.tmp, run.state_url = home, tmp_path, state_url
    return run


def _keystore_files(home) -> dict[str, bytes]:
    return {
        str(p.relative_to(home / "keystore")): p.read_bytes()
        for p in (home / "keystore").rglob("*.secret")
    }


def _secret(path: str) -> dict[str, str] | None:
    from penguinctl.cli.context import AppContext
    from penguinctl.settings import load_settings

    env = dict(os.environ)
    found = AppContext(settings=load_settings(env), env=env).secrets().get(path)
    return None if found is None else {k: v.reveal() for k, v in found.items()}


def test_transfer_keeps_key_records_and_mailboxes(world):
    key_path = "domains/acme-mail.example/dkim/pm202611"
    key = _secret(f"tenants/acme/{key_path}")
    zone = world.home / "zones" / "acme-mail.example.zone"
    zone_before = zone.read_bytes()

    assert world("domains", "transfer", "acme-mail.example", "--to", "nobody", "--yes").code == 2
    res = world("domains", "transfer", "acme-mail.example", "--to", "beta", "--yes", "-o", "json")
    assert res.code == 0, res.err
    moved = res.json()
    assert (moved["from"], moved["to"], moved["dkim_keys"], moved["mailboxes"]) == (
        "acme", "beta", 1, 1,
    )  # fmt: skip
    assert _secret(f"tenants/beta/{key_path}") == key  # the same key pair, not a new one
    assert _secret(f"tenants/acme/{key_path}") is None
    assert zone.read_bytes() == zone_before  # no record re-created

    engine = sa.create_engine(world.state_url)
    with engine.connect() as conn:
        owners = conn.execute(
            sa.text("SELECT DISTINCT tenant FROM resources WHERE name LIKE 'acme-mail.example%' "
                    "OR name LIKE '%@acme-mail.example'")
        ).all()  # fmt: skip
        audit = conn.execute(
            sa.text("SELECT tenant, details FROM audit_events WHERE action = 'domain.transfer'")
        ).all()
        events = conn.execute(
            sa.text("SELECT tenant, payload FROM events WHERE type = 'domain.transferred'")
        ).all()
    engine.dispose()
    assert [o[0] for o in owners] == ["beta"]
    assert sorted(a[0] for a in audit) == ["acme", "beta"]
    payloads = {t: (p if isinstance(p, dict) else json.loads(p)) for t, p in events}
    assert payloads["acme"]["direction"] == "out" and payloads["beta"]["direction"] == "in"
    assert "beta" not in json.dumps(payloads["acme"])  # each side names only itself

    # the old tenant's spec naming the domain is refused; the new tenant's spec converges
    old = world("plan", "-f", world.tmp / "acme.yaml")
    assert old.code == 3 and "domain acme-mail.example belongs to tenant beta" in old.err
    (world.tmp / "acme.yaml").write_text(tenant_spec("acme", "business", []))
    (world.tmp / "beta.yaml").write_text(
        tenant_spec("beta", "starter", ["beta-mail.example", "acme-mail.example"])
    )
    plan = world("plan", "-f", world.tmp / "beta.yaml", "--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out, plan.out + plan.err
    # and the destroy of the old tenant touches nothing of the domain
    assert world("destroy", "-f", world.tmp / "acme.yaml", "--yes", "--force").code == 0
    assert zone.read_bytes() == zone_before
    assert _secret(f"tenants/beta/{key_path}") == key


def test_transfer_waits_for_the_old_tenants_campaigns(world):
    from campaigndata import stored_campaign
    from sqlmodel import Session

    engine = sa.create_engine(world.state_url)
    with Session(engine) as session:
        stored_campaign(session, tenant="acme", name="q4")  # sends from john@acme-mail.example
        session.commit()
    res = world("domains", "transfer", "acme-mail.example", "--to", "beta", "--yes")
    assert res.code == 2 and "active campaign q4 sends from acme-mail.example" in res.err
    assert world("campaign", "pause", "q4", "--tenant", "acme").code == 0
    assert world("domains", "transfer", "acme-mail.example", "--to", "beta", "--yes").code == 0
    engine.dispose()


def test_transfer_refused_by_the_target_plan(world, monkeypatch, tmp_path):
    from penguinctl.billing.catalog import PACKAGED

    plans = PACKAGED.read_text().replace(
        "limits: {domains: 5, mailboxes: null", "limits: {domains: 1, mailboxes: null"
    )
    (tmp_path / "plans.yaml").write_text(plans)
    monkeypatch.setenv("PENGUINCTL_PLANS", str(tmp_path / "plans.yaml"))
    before = _keystore_files(world.home)
    res = world("domains", "transfer", "acme-mail.example", "--to", "beta", "--yes")
    assert res.code == 2
    assert "plan starter allows 1 domains; it has 1 and the transfer adds 1" in res.err
    assert _keystore_files(world.home) == before
