"""API keys and roles (issue 21, part 1): keys are stored hashed and shown once, expire, are
revoked at once, rotate with an overlap; the permission matrix is data (and the README's table is
generated from it); the FastAPI dependency authenticates a real HTTP request; the CLI manages
keys and audits them; a tenant owner's key never sees another tenant's keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from clitools import REPO, run_inprocess
from webkit import LiveApp

from penguinctl.clock import ManualClock
from penguinctl.errors import NotFound, Unauthenticated, UsageError
from penguinctl.identity import keys, permissions
from penguinctl.identity.principal import Principal
from penguinctl.identity.tables import ApiKey
from penguinctl.state.db import session_scope

pytestmark = pytest.mark.clock
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    from penguinctl import clock as clocks

    manual = ManualClock(T0)
    previous = clocks.install(manual)
    yield manual
    clocks.install(previous)


def test_key_lifecycle(migrated_engine, clock) -> None:
    with session_scope(migrated_engine) as s:
        key, token = keys.create(
            s, tenant="acme", role="admin", actor="op@host", expires_in=timedelta(days=90)
        )
    prefix = key.prefix
    assert token.startswith(f"pgk_{prefix}_") and len(token) == 4 + 12 + 1 + 43
    with migrated_engine.connect() as conn:
        row = conn.execute(sa.select(ApiKey.__table__)).one()._mapping
    stored = " ".join(str(v) for v in row.values())
    assert token.split("_", 2)[2] not in stored  # only the hash is stored
    with session_scope(migrated_engine) as s:
        who = keys.authenticate(s, token)
    assert who == Principal(key_id=prefix, role="admin", tenant="acme")
    assert who.actor == f"key:{prefix}"
    with session_scope(migrated_engine) as s:
        assert keys.get(s, prefix).last_used_at is not None
        # a wrong secret with the right prefix, a malformed token, an unknown prefix
        for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), "nope", "pgk_" + "0" * 12
                    + "_" + "A" * 43):  # fmt: skip
            with pytest.raises(Unauthenticated):
                keys.authenticate(s, bad)

    # rotation: the old secret works during the overlap only
    with session_scope(migrated_engine) as s:
        _, new = keys.rotate(s, prefix, actor="op@host", overlap=timedelta(hours=1))
    assert new != token and new.startswith(f"pgk_{prefix}_")
    with session_scope(migrated_engine) as s:
        assert keys.authenticate(s, token).key_id == prefix
        assert keys.authenticate(s, new).key_id == prefix
    clock.advance(timedelta(hours=1, seconds=1))
    with session_scope(migrated_engine) as s:
        with pytest.raises(Unauthenticated):
            keys.authenticate(s, token)
        assert keys.authenticate(s, new).role == "admin"

    # expiry, then revocation
    clock.advance(timedelta(days=90))
    with session_scope(migrated_engine) as s, pytest.raises(Unauthenticated, match="expired"):
        keys.authenticate(s, new)
    with session_scope(migrated_engine) as s:
        other, other_token = keys.create(s, tenant="", role="readonly", actor="op@host")
        keys.revoke(s, other.prefix, actor="op@host")
    with session_scope(migrated_engine) as s, pytest.raises(Unauthenticated, match="revoked"):
        keys.authenticate(s, other_token)

    # a tenant sees only its own keys; roles belong to their kind of key
    with session_scope(migrated_engine) as s:
        with pytest.raises(NotFound):
            keys.get(s, other.prefix, tenant="acme")
        with pytest.raises(NotFound):
            keys.revoke(s, prefix, actor="x", tenant="globex")
        with pytest.raises(UsageError):
            keys.create(s, tenant="acme", role="operator", actor="x")
        with pytest.raises(UsageError):
            keys.create(s, tenant="", role="owner", actor="x")

    from penguinctl.state.models import AuditEvent

    with migrated_engine.connect() as conn:
        actions = conn.execute(
            sa.select(AuditEvent.__table__.c.action, AuditEvent.__table__.c.actor)
        ).all()
    assert ("apikey.create", "op@host") in actions and ("apikey.rotate", "op@host") in actions
    assert ("apikey.revoke", "op@host") in actions


def test_permission_matrix() -> None:
    allowed = permissions.allowed
    assert allowed("read", "viewer", tenant=True)
    assert not allowed("campaigns.launch", "viewer", tenant=True)
    assert allowed("campaigns.launch", "member", tenant=True)
    assert not allowed("plans.apply", "member", tenant=True)
    assert allowed("plans.apply", "admin", tenant=True)
    assert not allowed("keys.manage", "admin", tenant=True)
    assert allowed("keys.manage", "owner", tenant=True)
    assert allowed("invoices.read", "owner", tenant=True)
    assert not allowed("leads.forget", "owner", tenant=True)
    assert allowed("read", "readonly", tenant=False)
    assert not allowed("plans.apply", "readonly", tenant=False)
    assert allowed("plans.apply", "operator", tenant=False)
    assert not allowed("keys.manage", "operator", tenant=False)
    # a role of the other kind never passes
    assert not allowed("read", "owner", tenant=False)
    assert not allowed("read", "operator", tenant=True)
    # every higher role can do what a lower one can
    for action in permissions.MATRIX:
        for roles, tenant in (
            (permissions.TENANT_ROLES, True),
            (permissions.PLATFORM_ROLES, False),
        ):
            granted = [allowed(action, r, tenant=tenant) for r in roles]
            assert granted == sorted(granted), (action, granted)


def test_readme_prints_the_matrix() -> None:
    readme = (REPO / "README.md").read_text()
    assert permissions.markdown_table() in readme, (
        "README's permission table is out of date: paste "
        "`python -c 'from penguinctl.identity.permissions import markdown_table as m; print(m())'`"
    )


def test_cli_and_http(tmp_path, state_url, capsys, monkeypatch) -> None:
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    made = run_inprocess(capsys, "apikeys", "create", "--tenant", "acme", "--role", "owner",
                         "--expires", "90d", "--name", "ci", "-o", "json")  # fmt: skip
    assert made.code == 0, made.err
    owner = made.json()
    assert owner["tenant"] == "acme" and owner["role"] == "owner" and owner["expires_at"]
    other = run_inprocess(capsys, "apikeys", "create", "--tenant", "globex", "--role", "viewer",
                          "-o", "json").json()  # fmt: skip
    bad = run_inprocess(capsys, "apikeys", "create", "--tenant", "acme", "--role", "readonly")
    assert bad.code == 2 and "not a role of a tenant key" in bad.err
    listed = run_inprocess(capsys, "apikeys", "list", "-o", "json").json()
    assert {k["id"] for k in listed} == {owner["id"], other["id"]}
    assert all("token" not in k and "secret_hash" not in k for k in listed)

    from penguinctl.state.db import make_engine

    engine = make_engine(state_url)
    with LiveApp(engine, None) as live:
        api = f"{live.base}/api/v1"
        res = httpx.get(f"{api}/me", headers={"Authorization": f"Bearer {owner['token']}"})
        assert res.status_code == 200, res.text
        assert res.json()["actor"] == f"key:{owner['id']}" and res.json()["tenant"] == "acme"
        assert "keys.manage" in res.json()["allowed"]
        none = httpx.get(f"{api}/me")
        assert none.status_code == 401
        assert none.headers["content-type"] == "application/problem+json"
        assert none.json()["type"] == "urn:penguinctl:problem:unauthorized"
        assert none.json()["exit_code"] == 2
        wrong = httpx.get(f"{api}/me", headers={"Authorization": "Bearer pgk_x"})
        assert wrong.status_code == 401
        # the owner's key lists its tenant's keys only; globex's key is 404 to it
        auth = {"Authorization": f"Bearer {owner['token']}"}
        mine = httpx.get(f"{api}/apikeys", headers=auth).json()["items"]
        assert [k["id"] for k in mine] == [owner["id"]]
        gone = httpx.delete(f"{api}/apikeys/{other['id']}", headers=auth)
        missing = httpx.delete(f"{api}/apikeys/ffffffffffff", headers=auth)
        assert gone.status_code == missing.status_code == 404
        assert gone.json()["detail"].replace(other["id"], "X") == missing.json()["detail"].replace(
            "ffffffffffff", "X"
        )
        # a viewer may read but not manage keys
        viewer = {"Authorization": f"Bearer {other['token']}"}
        assert httpx.get(f"{api}/me", headers=viewer).status_code == 200
        denied = httpx.get(f"{api}/apikeys", headers=viewer)
        assert denied.status_code == 403 and denied.json()["type"].endswith(":forbidden")
        # an owner creates a key for its tenant (never another's), audited as the owner's key
        made = httpx.post(f"{api}/apikeys", headers=auth, json={"role": "member"})
        assert made.status_code == 201 and made.json()["tenant"] == "acme", made.text
        cross = httpx.post(
            f"{api}/apikeys", headers=auth, json={"role": "member", "tenant": "globex"}
        )
        assert cross.status_code == 403
        rotated = httpx.post(f"{api}/apikeys/{made.json()['id']}/rotate", headers=auth,
                             json={"overlap": "0s"})  # fmt: skip
        assert rotated.status_code == 200
        old = httpx.get(f"{api}/me", headers={"Authorization": f"Bearer {made.json()['token']}"})
        assert old.status_code == 401
        new = httpx.get(f"{api}/me", headers={"Authorization": f"Bearer {rotated.json()['token']}"})
        assert new.status_code == 200 and new.json()["role"] == "member"
    audit = run_inprocess(capsys, "state", "audit", "-o", "json")
    assert audit.code == 0, audit.err
    rows = audit.json()
    rows = rows if isinstance(rows, list) else rows.get("events", rows)
    acted = {(e["action"], e["actor"]) for e in rows}
    assert ("apikey.create", f"key:{owner['id']}") in acted
    assert ("apikey.rotate", f"key:{owner['id']}") in acted
    engine.dispose()
