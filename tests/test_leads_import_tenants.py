"""Tenants are walls for bulk `leads import`: a tenant-scoped import (a tenant key through the
service the API's CSV upload calls, or the CLI with --tenant) reaches its own tenant's campaign
only, never another tenant's campaign of the same name, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from penguinctl.campaigns.models import Lead
from penguinctl.errors import NotFound
from penguinctl.state.db import session_scope
from tests.campaigndata import stored_campaign
from tests.clitools import run_inprocess


@pytest.fixture
def two_tenants(migrated_engine):
    """Campaign ``q4`` of acme and campaign ``q4`` of globex, without leads."""
    with session_scope(migrated_engine) as s:
        ids = {t: stored_campaign(s, tenant=t, name="q4").id for t in ("acme", "globex")}
    return ids


def _leads(engine, campaign_id: int) -> set[str]:
    t = Lead.__table__
    with engine.connect() as conn:
        query = sa.select(t.c.email).where(t.c.campaign_id == campaign_id)
        return set(conn.execute(query).scalars())


def _csv(tmp_path, n: int = 3) -> object:
    path = tmp_path / "leads.csv"
    path.write_text("email,first_name\n" + "".join(f"p{i}@x.example,P{i}\n" for i in range(n)))
    return path


def _tenant_key_context(engine, tenant: str):
    """What the API builds for a tenant key (services.context.from_web): ``tenant`` set."""
    from penguinctl import clock
    from penguinctl.services.context import ServiceContext

    return ServiceContext(
        db=engine,
        secrets=lambda: None,
        env={},
        actor=f"key:{tenant}-test",
        clock=clock.current(),
        settings_loader=lambda: None,
        tenant=tenant,
    )


@pytest.mark.parametrize("name,tenant", [("globex/q4", None), ("q4", "globex")])
def test_a_tenant_key_cannot_import_into_another_tenants_campaign(
    migrated_engine, tmp_path, two_tenants, name, tenant
):
    from penguinctl.services import leads

    ctx = _tenant_key_context(migrated_engine, "acme")
    with pytest.raises(NotFound):
        leads.import_csv(ctx, name, _csv(tmp_path), tenant=tenant, shown="leads.csv")
    assert _leads(migrated_engine, two_tenants["globex"]) == set()
    assert _leads(migrated_engine, two_tenants["acme"]) == set()


def test_a_tenant_keys_import_lands_in_its_own_campaign_only(
    migrated_engine, tmp_path, two_tenants
):
    """``q4`` exists for two tenants: acme's key imports into acme's, globex's is untouched
    (the bulk writers get the campaign's id, never a name)."""
    from penguinctl.services import leads

    ctx = _tenant_key_context(migrated_engine, "acme")
    result = leads.import_csv(ctx, "q4", _csv(tmp_path, 50), shown="leads.csv")
    assert result.created == 50 and not result.issues
    assert len(_leads(migrated_engine, two_tenants["acme"])) == 50
    assert _leads(migrated_engine, two_tenants["globex"]) == set()


def test_cli_import_with_a_tenant_cannot_reach_another_tenants_campaign(
    state_url, migrated_engine, tmp_path, two_tenants, monkeypatch, capsys
):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    path = str(_csv(tmp_path, 5))
    refused = run_inprocess(
        capsys, "--state", state_url, "leads", "import", "globex/q4", path, "-t", "acme"
    )
    assert refused.code != 0 and "no campaign" in refused.err, refused.err
    assert _leads(migrated_engine, two_tenants["globex"]) == set()
    done = run_inprocess(capsys, "--state", state_url, "leads", "import", "q4", path, "-t", "acme")
    assert done.code == 0, done.err
    assert len(_leads(migrated_engine, two_tenants["acme"])) == 5
    assert _leads(migrated_engine, two_tenants["globex"]) == set()
