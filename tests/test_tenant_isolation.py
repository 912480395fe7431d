"""Tenants are walls: a tenant's spec can neither claim, change nor delete what another owns.

The isolation matrix: tenant ``acme`` applies its spec; tenant ``evil`` then claims each kind of
named thing acme owns (domain, a name inside it, mailbox, alias, server name, server hostname,
Hostwinds label, zone file) and is refused at plan and apply (exit 3) on SQLite and PostgreSQL,
while nothing of acme changes: zone file bytes, keystore files, acme's state rows. Then issue
16's reproduction: rows squatted before ownership existed are only forgotten by evil's destroy.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from clitools import run_inprocess

from penguinctl.plan.changes import Action, Change
from penguinctl.plan.confine import (
    Claim,
    Conflict,
    Owners,
    OwnershipConflict,
    confine,
    find_conflicts,
)
from penguinctl.resources import ResourceKey

ACME = """\
apiVersion: penguinctl/v1
kind: Tenant
metadata: {name: acme}
spec: {plan: business}
---
apiVersion: penguinctl/v1
kind: Server
metadata: {name: mx1, tenant: acme}
spec:
  provider: external
  external: {ips: [203.0.113.7]}
  hostname: mail.acme-mail.example
---
apiVersion: penguinctl/v1
kind: DnsProvider
metadata: {name: zones, tenant: acme}
spec: {type: zonefile}
---
apiVersion: penguinctl/v1
kind: Domain
metadata: {name: acme-mail.example, tenant: acme}
spec:
  server: mx1
  dns: zones
  dmarc: {policy: none, rua: dmarc@acme-mail.example}
  mailboxes:
    - {local: john, display_name: John, daily_limit: 30}
  aliases:
    - {local: sales, destinations: [john@acme-mail.example]}
"""

EVIL_BASE = """\
apiVersion: penguinctl/v1
kind: Tenant
metadata: {name: evil}
spec: {plan: business}
---
apiVersion: penguinctl/v1
kind: DnsProvider
metadata: {name: zones, tenant: evil}
spec: {type: zonefile}
"""


def server(name: str, hostname: str, tenant: str | None = "evil", provider: str = "external"):
    meta = f"{{name: {name}, tenant: {tenant}}}" if tenant else f"{{name: {name}}}"
    block = (
        "  external: {ips: [198.51.100.9]}\n"
        if provider == "external"
        else "  hostwinds: {location_id: 1, template: ubuntu-22.04, rid: 2}\n"
    )
    return (
        f"---\napiVersion: penguinctl/v1\nkind: Server\nmetadata: {meta}\nspec:\n"
        f"  provider: {provider}\n{block}  hostname: {hostname}\n"
    )


def domain(name: str, *, srv: str = "evil-mx", mailbox: str | None = None, alias=None) -> str:
    text = (
        f"---\napiVersion: penguinctl/v1\nkind: Domain\nmetadata: {{name: {name}, tenant: evil}}\n"
        f"spec:\n  server: {srv}\n  dns: zones\n"
        f"  dmarc: {{policy: none, rua: dmarc@{name}}}\n"
    )
    if mailbox:
        text += f"  mailboxes:\n    - {{local: {mailbox}, display_name: X, daily_limit: 30}}\n"
    if alias:
        text += f"  aliases:\n    - {{local: {alias}, destinations: [x@evil-mail.example]}}\n"
    return text


EVIL_MX = server("evil-mx", "mx.evil-mail.example")

# kind of named thing -> (evil's spec, what the refusal names)
MATRIX = {
    "domain": (
        EVIL_BASE + EVIL_MX + domain("acme-mail.example"),
        "domain acme-mail.example belongs to tenant acme",
    ),
    "name inside a domain": (
        EVIL_BASE + EVIL_MX + domain("shop.acme-mail.example"),
        "overlaps domain acme-mail.example, which belongs to tenant acme",
    ),
    "mailbox": (
        EVIL_BASE + EVIL_MX + domain("acme-mail.example", mailbox="john"),
        "mailbox john@acme-mail.example belongs to tenant acme",
    ),
    "alias": (
        EVIL_BASE + EVIL_MX + domain("acme-mail.example", alias="sales"),
        "alias sales@acme-mail.example belongs to tenant acme",
    ),
    "server name": (
        EVIL_BASE + server("mx1", "mx.evil-mail.example") + domain("evil-mail.example", srv="mx1"),
        "server mx1 belongs to tenant acme",
    ),
    "server name, as the platform's": (
        EVIL_BASE
        + server("mx1", "mx.evil-mail.example", tenant=None)
        + domain("evil-mail.example", srv="mx1"),
        "server mx1 belongs to tenant acme; the platform cannot claim it",
    ),
    "server hostname": (
        EVIL_BASE + server("evil-mx", "mail.acme-mail.example") + domain("evil-mail.example"),
        "server hostname mail.acme-mail.example belongs to tenant acme",
    ),
    "zone file": (
        EVIL_BASE + EVIL_MX + domain("acme-mail.example"),
        "zone file ",
    ),
    "secret": (
        EVIL_BASE
        + EVIL_MX
        + domain("evil-mail.example", mailbox="x").replace(
            "daily_limit: 30}", "daily_limit: 30, password: 'keystore:tenants/acme/providers/cf'}"
        ),
        "secret reference keystore:tenants/acme/providers/cf belongs to tenant acme",
    ),
    "platform secret": (
        EVIL_BASE
        + EVIL_MX
        + domain("evil-mail.example", mailbox="x").replace(
            "daily_limit: 30}", "daily_limit: 30, password: 'vault:penguinctl/platform/x#k'}"
        ),
        "secret reference vault:penguinctl/platform/x#k belongs to the platform",
    ),
}


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, state_url):
    home = tmp_path / "home"
    monkeypatch.setenv("PENGUINCTL_HOME", str(home))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    monkeypatch.delenv("PENGUINCTL_MASTER_KEY", raising=False)
    monkeypatch.delenv("PENGUINCTL_SECRETS", raising=False)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")

    def run(*args):
        return run_inprocess(capsys, *args)

    run.home = home
    run.state_url = state_url
    assert run("init").code == 0
    (tmp_path / "acme.yaml").write_text(ACME)
    applied = run("apply", "-f", tmp_path / "acme.yaml", "--yes")
    assert applied.code == 0, applied.err
    return run


def snapshot(cli) -> dict:
    """Everything of acme: zone file bytes, keystore files (encrypted bytes), state rows."""
    home = cli.home
    files = {
        str(p.relative_to(home)): p.read_bytes()
        for tree in ("zones", "keystore")
        for p in sorted((home / tree).rglob("*"))
        if p.is_file()
    }
    engine = sa.create_engine(cli.state_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT kind, name, data, updated_at FROM resources WHERE tenant = 'acme' "
                    "ORDER BY kind, name"
                )
            ).all()
    finally:
        engine.dispose()
    assert rows and any(k.startswith("keystore/tenants/acme/") for k in files)
    return {"files": files, "rows": [tuple(map(str, r)) for r in rows]}


@pytest.mark.parametrize("kind", sorted(MATRIX))
def test_a_tenant_cannot_claim_what_another_owns(cli, tmp_path, kind):
    spec, owner_named = MATRIX[kind]
    evil = tmp_path / "evil.yaml"
    evil.write_text(spec)
    before = snapshot(cli)
    for command in (("validate",), ("plan",), ("apply", "--yes"), ("apply", "--yes", "--force")):
        res = cli(*command, "-f", evil)
        assert res.code == 3, (command, res.out, res.err)
        assert owner_named in res.err, res.err
        assert "evil.yaml:" in res.err  # where the claim is written
    check = cli("apply", "--check", "-f", evil)
    assert check.code == 3, check.err
    assert snapshot(cli) == before
    # acme itself is untouched and still converged
    assert "No changes" in cli("plan", "-f", tmp_path / "acme.yaml").out


def test_hostwinds_label_of_another_tenant_is_refused(cli, tmp_path):
    """Hostwinds labels are pc-<tenant>-<server>: tenant "acme-web" with server "mx" would
    reuse the label of acme's server "web-mx" (and adopt its VPS as a lost order)."""
    engine = sa.create_engine(cli.state_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO resources (tenant, kind, name, provider, data, status, created_at, "
                "updated_at) VALUES ('acme', 'server', 'web-mx', 'server:hostwinds', :data, "
                "'applied', :ts, :ts)"
            ),
            {"data": '{"srvrname": "pc-acme-web-mx", "hostname": "web.acme-mail.example"}',
             "ts": "2026-11-01 00:00:00+00:00"},
        )  # fmt: skip
    engine.dispose()
    spec = EVIL_BASE.replace("evil", "acme-web") + server(
        "mx", "mx.evil-mail.example", tenant="acme-web", provider="hostwinds"
    )
    (tmp_path / "label.yaml").write_text(spec)
    res = cli("plan", "-f", tmp_path / "label.yaml")
    assert res.code == 3, res.err
    assert "Hostwinds label pc-acme-web-mx belongs to tenant acme" in res.err


def test_two_tenants_of_one_spec_cannot_claim_one_name(cli, tmp_path):
    evil_base = EVIL_BASE.replace("name: zones", "name: evil-zones")
    inside = ACME.replace("acme-mail.example", "acme3-mail.example").replace("mx1", "mx3")
    inside += "---\n" + evil_base + EVIL_MX
    inside += domain("eu.acme3-mail.example").replace("dns: zones", "dns: evil-zones")
    (tmp_path / "inside.yaml").write_text(inside)
    res = cli("plan", "-f", tmp_path / "inside.yaml")
    assert res.code == 3, res.err
    want = "eu.acme3-mail.example (tenant evil) overlaps domain acme3-mail.example of tenant acme"
    assert want in res.err and "in this spec" in res.err, res.err
    hostname = ACME.replace("acme-mail.example", "acme2-mail.example").replace("mx1", "mx2")
    hostname += "---\n" + evil_base + server("evil-mx", "mail.acme2-mail.example")
    (tmp_path / "both.yaml").write_text(hostname)
    res = cli("plan", "-f", tmp_path / "both.yaml")
    assert res.code == 3 and "mail.acme2-mail.example" in res.err, res.err


def _squat(cli) -> None:
    """The state issue 16 left behind: evil's rows for acme's domain, recorded after acme's."""
    engine = sa.create_engine(cli.state_url)
    with engine.begin() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT kind, name, provider, data FROM resources WHERE tenant = 'acme' "
                "AND kind IN ('domain', 'dkim', 'dnsrecord', 'mailbox', 'mailalias', 'dnsprovider')"
            )
        ).all()
        for kind, name, provider, data in rows:
            provider = "dns:zones" if provider.startswith("dns:") else provider
            conn.execute(
                sa.text(
                    "INSERT INTO resources (tenant, kind, name, provider, data, status, "
                    "created_at, updated_at) VALUES ('evil', :k, :n, :p, :d, 'applied', "
                    ":ts, :ts)"
                ),
                {"k": kind, "n": name, "p": provider,
                 "d": data if isinstance(data, str) else __import__("json").dumps(data),
                 "ts": "2099-01-01 00:00:00+00:00"},
            )  # fmt: skip
    engine.dispose()


def test_issue_16_reproduction(cli, tmp_path):
    """acme applies acme-mail.example; evil declares the same domain: refused (no zone rewrite,
    no key adoption); and evil's rows squatted before this fix are only forgotten by evil's
    destroy --force: acme's key, zone and rows stay, and acme's plan still says No changes."""
    evil = tmp_path / "evil.yaml"
    evil.write_text(EVIL_BASE + EVIL_MX + domain("acme-mail.example", mailbox="john"))
    zone = cli.home / "zones" / "acme-mail.example.zone"
    zone_before = zone.read_bytes()
    res = cli("apply", "-f", evil, "--yes", "--force")
    assert res.code == 3 and "domain acme-mail.example belongs to tenant acme" in res.err
    assert zone.read_bytes() == zone_before
    keys = sorted((cli.home / "keystore").rglob("*.secret"))
    assert all("tenants/acme/" in str(k) for k in keys) and keys

    _squat(cli)
    before = snapshot(cli)
    status = cli("dkim", "status", "-o", "json").json()["domains"]
    assert [(d["domain"], d["tenant"]) for d in status] == [("acme-mail.example", "acme")]
    assert cli("dkim", "rotate", "--all-due").code == 0  # evil's copies are never rotated
    destroy = cli("destroy", "-f", evil, "--yes", "--force")
    assert destroy.code == 0, destroy.err
    assert "only the record of tenant evil is removed" in destroy.out + destroy.err
    assert snapshot(cli) == before  # acme's key, zone file and rows: all still there
    engine = sa.create_engine(cli.state_url)
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM resources WHERE tenant = 'evil'"))
        assert left.scalar() == 0
    engine.dispose()
    plan = cli("plan", "-f", tmp_path / "acme.yaml", "--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out


def test_destroy_keeps_a_platform_server_other_tenants_use(cli, tmp_path):
    shared = server("shared-mx", "mx.platform-mail.example", tenant=None)
    acme = ACME.replace("server: mx1", "server: shared-mx") + shared
    (tmp_path / "acme2.yaml").write_text(acme)
    assert cli("apply", "-f", tmp_path / "acme2.yaml", "--yes").code == 0
    evil = tmp_path / "evil.yaml"
    evil.write_text(EVIL_BASE + shared + domain("evil-mail.example", srv="shared-mx"))
    assert cli("apply", "-f", evil, "--yes").code == 0
    res = cli("destroy", "-f", evil, "--yes", "--force")
    assert res.code == 0, res.err
    assert "server/shared-mx: kept" in res.out + res.err
    listed = cli("get", "servers", "-o", "json").json()
    assert "shared-mx" in str(listed)


# -- units: the rules without a state store ------------------------------------------------------
def test_conflict_names_the_owner_only_when_allowed():
    c = Conflict("domain", "acme-mail.example", "evil", "acme")
    assert "tenant acme" in c.message()
    assert "acme" not in c.anonymous().replace("acme-mail.example", "")
    inside = Conflict("domain", "x.acme-mail.example", "evil", "acme", within="acme-mail.example")
    assert "another tenant" in inside.anonymous() and " acme " not in inside.anonymous()


def test_confine_turns_a_foreign_delete_into_forgetting_and_refuses_other_changes():
    owners = Owners()
    owners.claim("domain", "acme-mail.example", "acme")
    key = ResourceKey("dkim", "evil", "acme-mail.example/pm202611")
    delete = Change(Action.DELETE, key, "dkim", {"selector": "pm202611"}, None)
    out, notes = confine([delete], owners, tenants=["evil"], db=None, destroy=True)
    assert out[0].provider == "state" and notes
    update = Change(Action.UPDATE, ResourceKey("domain", "evil", "acme-mail.example"), "state",
                    {}, {"x": 1})  # fmt: skip
    with pytest.raises(OwnershipConflict):
        confine([update], owners, tenants=["evil"], db=None, destroy=False)
    assert find_conflicts([], owners) == []


def test_two_tenants_racing_for_a_new_name_only_one_wins(tmp_path, monkeypatch, capsys, state_url):
    """Both plan before either applied; the second apply's check, under the claims lock and
    before any side effect, sees the first one's rows and stops."""
    from penguinctl.cli.context import AppContext
    from penguinctl.engine import Engine
    from penguinctl.settings import load_settings
    from penguinctl.spec import load_specs

    home = tmp_path / "home"
    monkeypatch.setenv("PENGUINCTL_HOME", str(home))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    monkeypatch.delenv("PENGUINCTL_MASTER_KEY", raising=False)
    monkeypatch.delenv("PENGUINCTL_SECRETS", raising=False)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    assert run_inprocess(capsys, "init").code == 0
    (tmp_path / "acme.yaml").write_text(ACME)
    (tmp_path / "evil.yaml").write_text(EVIL_BASE + EVIL_MX + domain("acme-mail.example"))

    import os
    from datetime import date

    env = dict(os.environ)
    app = AppContext(settings=load_settings(env), env=env)
    evil = Engine(
        specs=load_specs([tmp_path / "evil.yaml"]), db_engine=app.db, secrets_factory=app.secrets,
        zones_dir=app.settings.zones_dir, today=date(2026, 11, 23), actor="evil", env=env,
    )  # fmt: skip
    evil_plan = evil.plan()
    assert any(c.key.name == "acme-mail.example" for c in evil_plan.changes)
    assert run_inprocess(capsys, "apply", "-f", tmp_path / "acme.yaml", "--yes").code == 0
    zone = (home / "zones" / "acme-mail.example.zone").read_bytes()
    with pytest.raises(OwnershipConflict, match="belongs to tenant acme"):
        evil.apply(evil_plan)
    assert (home / "zones" / "acme-mail.example.zone").read_bytes() == zone
    app.close()


def test_the_anonymous_wording_never_names_the_owner():
    owners = Owners()
    owners.claim("domain", "acme-mail.example", "acme")
    owners.claim("server", "mx1", "acme")
    claims = [
        Claim("domain", "acme-mail.example", "evil", None),
        Claim("domain", "eu.acme-mail.example", "evil", None),
        Claim("server", "mx1", "evil", None),
        Claim("hostname", "mail.acme-mail.example", "evil", None),
    ]
    conflicts = find_conflicts(claims, owners)
    assert len(conflicts) == 4
    error = OwnershipConflict(conflicts)
    assert all("tenant acme" in m for m in error.messages(reveal_owner=True))
    for line in error.messages(reveal_owner=False):
        assert "tenant acme" not in line and "another tenant" in line, line
