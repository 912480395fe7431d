"""`penguinctl secrets migrate-layout`: old ownerless secret paths moved under their owner, on the
keystore and on Vault (the double), without losing one: dry run, crash and resume, conflicts,
the marker, the refusal of other commands before it ran, and the audit trail (no values)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from clitools import QUICKSTART, run_inprocess
from secrets_backends import secrets_backend  # noqa: F401

from penguinctl import secret_layout
from penguinctl.plan.confine import Owners

DOMAINS = ["acme-growth.example", "acme-mail.example", "acme-outreach.example"]


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, secrets_backend):  # noqa: F811
    home = tmp_path / "home"
    monkeypatch.setenv("PENGUINCTL_HOME", str(home))
    monkeypatch.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.delenv("PENGUINCTL_MASTER_KEY", raising=False)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")

    def run(*args):
        return run_inprocess(capsys, *args)

    run.home = home
    run.backend = secrets_backend
    run.state_url = f"sqlite:///{tmp_path / 'state.db'}"
    assert run("init").code == 0
    assert run("apply", "-f", QUICKSTART, "--yes").code == 0
    return run


def _raw(cli):
    """The configured backend, without the layout check."""
    import os

    from penguinctl.cli.context import AppContext
    from penguinctl.settings import load_settings

    env = dict(os.environ)
    app = AppContext(settings=load_settings(env), env=env)
    app.any_secrets_layout = True
    return app.secrets()


def _values(backend) -> dict[str, dict[str, str]]:
    return {p: {k: v.reveal() for k, v in (backend.get(p) or {}).items()} for p in backend.list()}


def _make_old_layout(backend) -> dict[str, dict[str, str]]:
    """Put every tenant key back where the old layout kept it, plus the other old kinds."""
    old: dict[str, dict[str, str]] = {}
    for path, fields in _values(backend).items():
        legacy = path.removeprefix("tenants/acme/")
        backend.put(legacy, fields)
        backend.delete(path)
        old[legacy] = fields
    extra = {
        "servers/mx1/ssh": {"private_key": "ssh-key-1"},
        "mailboxes/john@acme-mail.example": {"password": "pw-john-1", "rotated_at": "2026-01-01"},
        "mailboxes/ref@acme-mail.example": {"value": "a spec references me"},
        "providers/hostwinds": {"api_key": "hw-key-1"},
        "campaigns/unsubscribe": {"key": "unsub-1"},
        "domains/gone.example/dkim/pm202001": {"private_key": "orphan"},
        "providers/cf": {"value": "cf-token"},
    }
    for path, fields in extra.items():
        backend.put(path, fields)
    return {**old, **extra}


EXPECTED = {
    "servers/mx1/ssh": "tenants/acme/servers/mx1/ssh",
    "mailboxes/john@acme-mail.example": "tenants/acme/mailboxes/john@acme-mail.example",
    "providers/hostwinds": "platform/providers/hostwinds",
    "campaigns/unsubscribe": "platform/campaigns/unsubscribe",
    "domains/gone.example/dkim/pm202001": "platform/unowned/domains/gone.example/dkim/pm202001",
    **{f"domains/{d}/dkim/pm202611": f"tenants/acme/domains/{d}/dkim/pm202611" for d in DOMAINS},
}
KEPT = {"mailboxes/ref@acme-mail.example", "providers/cf"}


def test_migrate_layout_moves_every_secret_once(cli):
    backend = _raw(cli)
    before = _make_old_layout(backend)

    refused = cli("plan", "-f", QUICKSTART)
    assert refused.code == 2
    assert "old layout" in refused.err and "penguinctl secrets migrate-layout" in refused.err
    assert cli("secrets", "list").code == 0  # the secrets commands still work

    dry = cli("secrets", "migrate-layout", "--dry-run", "-o", "json")
    assert dry.code == 0, dry.err
    planned = {m["from"]: m["to"] for m in dry.json()["moves"]}
    assert {k: planned[k] for k in EXPECTED} == EXPECTED
    assert _values(backend) == before  # a dry run changes nothing

    res = cli("secrets", "migrate-layout", "-o", "json")
    assert res.code == 0, res.err
    after = _values(backend)
    for old, new in EXPECTED.items():
        assert old not in after
        got = dict(after[new])
        if old == "servers/mx1/ssh":  # its age is kept: rotated_at from the old version's time
            assert got.pop("rotated_at")
        assert got == before[old], old
    for kept in KEPT:
        assert after[kept] == before[kept]
    assert after["platform/layout"] == {"version": "2"}

    plan = cli("plan", "-f", QUICKSTART, "--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out, plan.out + plan.err
    again = cli("secrets", "migrate-layout", "-o", "json")
    assert again.code == 0 and again.json()["counts"] in ({}, {"kept": 1})

    engine = sa.create_engine(cli.state_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT resource, details FROM audit_events WHERE action = 'secret.layout.move'"
            )
        ).all()
    engine.dispose()
    assert {r[0] for r in rows} >= {f"secret/{p}" for p in EXPECTED}
    trail = json.dumps([list(map(str, r)) for r in rows])
    assert "pw-john-1" not in trail and "ssh-key-1" not in trail and "BEGIN" not in trail


class Crash(Exception):
    pass


class CrashingBackend:
    """The real backend, dying at its ``n``-th write or delete (a process killed mid-run)."""

    def __init__(self, real, n: int) -> None:
        self.real, self.left = real, n
        self.name = real.name

    def _tick(self):
        self.left -= 1
        if self.left <= 0:
            raise Crash

    def put(self, path, fields):
        self._tick()
        return self.real.put(path, fields)

    def delete(self, path):
        self._tick()
        return self.real.delete(path)

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.mark.parametrize("crash_at", [1, 2, 5])
def test_a_crash_mid_migration_loses_nothing_and_a_rerun_resumes(cli, crash_at):
    backend = _raw(cli)
    before = _make_old_layout(backend)
    owners = Owners()
    owners.claim("server", "mx1", "acme")
    for d in DOMAINS:
        owners.claim("domain", d, "acme")
    moves = secret_layout.plan_moves(backend, owners)
    with pytest.raises(Crash):
        secret_layout.migrate(CrashingBackend(backend, crash_at), moves)
    # every secret is at its old path, its new path, or both (identical): none lost
    now = _values(backend)
    for old, new in EXPECTED.items():
        got = now.get(new) or now.get(old)
        assert got is not None, old
        got = {
            k: v for k, v in got.items() if not (old.startswith("servers/") and k == "rotated_at")
        }
        assert got == before[old]
    outcomes = secret_layout.migrate(backend, secret_layout.plan_moves(backend, owners))
    assert {o.result for o in outcomes} <= {"moved", "kept"}
    done = _values(backend)
    assert not set(EXPECTED) & set(done)
    assert done["platform/layout"] == {"version": "2"}


def test_a_different_secret_at_the_new_path_is_a_conflict_not_an_overwrite(cli):
    backend = _raw(cli)
    _make_old_layout(backend)
    backend.put("tenants/acme/servers/mx1/ssh", {"private_key": "someone else's"})
    res = cli("secrets", "migrate-layout")
    assert res.code == 6, res.err  # the others moved
    assert "tenants/acme/servers/mx1/ssh already holds a different secret" in res.out + res.err
    assert backend.get("servers/mx1/ssh")["private_key"].reveal() == "ssh-key-1"
    assert backend.get("tenants/acme/servers/mx1/ssh")["private_key"].reveal() == "someone else's"
    assert backend.get("platform/layout") is None  # not done: commands still refuse
    assert cli("plan", "-f", QUICKSTART).code == 2
    backend.delete("tenants/acme/servers/mx1/ssh")  # the operator decides
    assert cli("secrets", "migrate-layout").code == 0
    assert cli("plan", "-f", QUICKSTART).code == 0


def test_a_token_scoped_to_one_tenant_is_not_refused_for_what_it_cannot_list():
    from fakes.vault import FakeVault

    from penguinctl.providers.secrets.vault import VaultBackend

    with FakeVault() as vault:
        vault.add_token("root-ish", [("secret/*", {"create", "read", "update", "list", "delete"})])
        vault.add_token(
            "acme-only",
            [
                ("secret/data/penguinctl/tenants/acme/*", {"create", "read", "update"}),
                ("secret/metadata/penguinctl/tenants/acme/*", {"list", "read", "delete"}),
            ],
        )
        admin = VaultBackend.from_env({"VAULT_ADDR": vault.url, "VAULT_TOKEN": "root-ish"})
        admin.put("domains/old.example/dkim/pm1", {"private_key": "k"})
        assert secret_layout.legacy_signs(admin) == ["domains/"]
        scoped = VaultBackend.from_env({"VAULT_ADDR": vault.url, "VAULT_TOKEN": "acme-only"})
        assert secret_layout.legacy_signs(scoped) == []
        scoped.put("tenants/acme/mailboxes/john@acme-mail.example", {"password": "pw-123456"})
        assert scoped.list("tenants/acme/") == ["tenants/acme/mailboxes/john@acme-mail.example"]
