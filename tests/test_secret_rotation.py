"""`secrets rotate` and the rotation contract (penguinctl.secret_rotation): due items, the
registry, a small in-test rotation kind registered through the registry's API, and DKIM keys
rotated through the contract. The CLI tests run on the keystore and on Vault (the double)."""

from __future__ import annotations

import json
import secrets as pysecrets
import sys
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
from clitools import QUICKSTART, run_inprocess
from secrets_backends import secrets_backend  # noqa: F401

from penguinctl import clock
from penguinctl.errors import ConfigError, ProviderError, UsageError
from penguinctl.providers.secrets.keystore import KeystoreBackend
from penguinctl.secret_rotation import registry
from penguinctl.secret_rotation.base import (
    ROTATED_AT,
    DueItem,
    Rotation,
    last_rotated,
    parse_time,
)

pytestmark = pytest.mark.clock  # date-sensitive: scripts/test re-runs it under shifted clocks

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


# -- the contract -------------------------------------------------------------------------------
def test_due_item_times():
    period = timedelta(days=90)
    never = DueItem("ssh", "mx1", "acme", "servers/mx1/ssh", None, period)
    assert never.due_at is None and never.is_due(NOW)
    fresh = DueItem("ssh", "mx1", "acme", "servers/mx1/ssh", NOW - timedelta(days=89), period)
    assert fresh.due_at == NOW + timedelta(days=1) and not fresh.is_due(NOW)
    assert fresh.is_due(NOW + timedelta(days=1))
    doc = fresh.to_json(NOW)
    assert doc["due"] is False and doc["period_days"] == 90 and doc["path"] == "servers/mx1/ssh"


def test_parse_time_and_last_rotated(tmp_path):
    assert parse_time("2026-05-01T10:00:00.123456789Z") == datetime(
        2026, 5, 1, 10, 0, 0, 123456, tzinfo=UTC
    )
    assert parse_time("2026-05-01T10:00:00") == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert parse_time("") is None and parse_time("yesterday") is None
    ks = KeystoreBackend(tmp_path / "ks", key_file=tmp_path / "master.key")
    assert last_rotated(ks, "providers/x") is None
    ks.put("providers/x", {"api_token": "t"})  # no rotated_at: the time of the write
    written = last_rotated(ks, "providers/x")
    assert written is not None and abs(written - clock.now()) < timedelta(minutes=5)
    ks.put("providers/x", {"api_token": "t", ROTATED_AT: "2026-01-02T03:04:05+00:00"})
    assert last_rotated(ks, "providers/x") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_registry(tmp_path, monkeypatch):
    assert {"ssh", "mailbox", "dkim"} <= set(registry.kinds())
    from penguinctl.secret_rotation.dkim import DkimRotation

    assert registry.load("dkim") is DkimRotation
    with pytest.raises(UsageError, match="unknown rotation kind 'nope'"):
        registry.load("nope")
    # a module that does not exist (yet) is skipped
    registry.register("later", "penguinctl.secret_rotation.not_written_yet:Later")
    try:
        assert registry.load("later") is None
        assert "later" not in registry.available()
        assert "later" not in registry.available(["later", "dkim"])
        assert "dkim" in registry.available(["later", "dkim"])
        with pytest.raises(ValueError, match="already registered"):
            registry.register("later", ApiTokenRotation)
        registry.register("later", ApiTokenRotation, replace=True)
        assert registry.load("later") is ApiTokenRotation
    finally:
        registry.unregister("later")
    assert "later" not in registry.kinds()
    # a module that exists but cannot be imported is an error, not silently skipped
    (tmp_path / "broken_rotation.py").write_text("import not_installed_dependency_xyz\n")
    (tmp_path / "odd_rotation.py").write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register("broken", "broken_rotation:Broken")
    registry.register("odd", "odd_rotation:Thing")
    try:
        with pytest.raises(ConfigError, match="broken_rotation cannot be imported"):
            registry.load("broken")
        with pytest.raises(ConfigError, match="not a Rotation subclass"):
            registry.load("odd")
    finally:
        registry.unregister("broken")
        registry.unregister("odd")
        sys.modules.pop("odd_rotation", None)


# -- an in-test rotation kind -------------------------------------------------------------------
class ApiTokenRotation(Rotation):
    """API tokens at providers/<name>: a new random token and rotated_at per rotation."""

    kind: ClassVar[str] = "apitoken"
    default_period: ClassVar[timedelta] = timedelta(days=90)
    NAMES: ClassVar[list[str]] = ["alpha", "beta", "broken", "gamma"]

    def candidates(self) -> list[DueItem]:
        return [
            DueItem(
                self.kind,
                name,
                "acme",
                f"providers/{name}",
                last_rotated(self.ctx.secrets, f"providers/{name}"),
                self.default_period,
            )
            for name in self.NAMES
        ]

    def rotate(self, item: DueItem) -> str:
        if item.target == "broken":
            self.ctx.audit(
                tenant=item.tenant,
                action="apitoken.issue",
                resource=f"secret/{item.path}",
                result="failed",
            )
            raise ProviderError(f"{item.target}: the provider refused to issue a new token")
        token = "tok-" + pysecrets.token_urlsafe(24)
        meta = self.ctx.secrets.put(
            item.path, {"api_token": token, ROTATED_AT: self.ctx.now().isoformat()}
        )
        self.ctx.audit(
            tenant=item.tenant,
            action="apitoken.store",
            resource=f"secret/{item.path}",
            details={"version": meta.version},
        )
        return f"new token, version {meta.version}"


@pytest.fixture
def apitoken_kind():
    registry.register("apitoken", ApiTokenRotation)
    yield ApiTokenRotation
    registry.unregister("apitoken")


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, secrets_backend):  # noqa: F811
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PENGUINCTL_STATE", raising=False)
    monkeypatch.delenv("PENGUINCTL_MASTER_KEY", raising=False)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    clock = {"now": NOW}
    monkeypatch.setattr("penguinctl.cli.secrets_common._now", lambda: clock["now"])

    def run(*args):
        return run_inprocess(capsys, *args)

    run.clock = clock
    run.secrets = secrets_backend
    return run


def _token(cli, name: str) -> str | None:
    fields = cli.secrets.backend().get(f"providers/{name}")
    return fields["api_token"].reveal() if fields else None


def _audit(cli) -> list[dict]:
    res = cli("state", "audit", "-o", "json", "--limit", "1000")
    assert res.code == 0, res.err
    return list(reversed(res.json()))


def test_rotate_lists_rotates_due_and_goes_on_after_a_failure(cli, apitoken_kind):
    assert cli("init").code == 0
    backend = cli.secrets.backend()
    old = (NOW - timedelta(days=200)).isoformat()
    backend.put("providers/alpha", {"api_token": "tok-alpha-original", ROTATED_AT: old})
    recent = (NOW - timedelta(days=10)).isoformat()
    backend.put("providers/beta", {"api_token": "tok-beta-original", ROTATED_AT: recent})

    listed = cli("secrets", "rotate", "--kind", "apitoken", "-o", "json")
    assert listed.code == 0, listed.err
    doc = listed.json()
    assert doc["mode"] == "list" and doc["results"] == []
    assert {i["target"]: i["due"] for i in doc["items"]} == {
        "alpha": True,
        "beta": False,
        "broken": True,
        "gamma": True,
    }
    beta = next(i for i in doc["items"] if i["target"] == "beta")
    assert beta["last_rotated"].startswith("2026-11-13") and beta["due_at"].startswith("2027-02")
    text = cli("secrets", "rotate", "--kind", "apitoken")
    assert text.code == 0 and "gamma" in text.out and "never" in text.out

    dry = cli("secrets", "rotate", "--kind", "apitoken", "--due", "--dry-run", "-o", "json")
    assert dry.code == 0, dry.err
    assert dry.json()["mode"] == "dry-run"
    assert [i["target"] for i in dry.json()["items"]] == ["alpha", "broken", "gamma"]
    assert _token(cli, "alpha") == "tok-alpha-original" and _token(cli, "gamma") is None

    res = cli("secrets", "rotate", "--kind", "apitoken", "--due", "-o", "json")
    assert res.code == 6, res.err  # partial: broken failed, the others were rotated
    assert "1 of 3 rotation(s) failed; first: apitoken broken" in res.err
    results = {r["target"]: r for r in res.json()["results"]}
    assert results["alpha"]["result"] == results["gamma"]["result"] == "rotated"
    assert results["broken"] == {
        "kind": "apitoken",
        "target": "broken",
        "path": "providers/broken",
        "result": "failed",
        "error": "broken: the provider refused to issue a new token",
    }
    new_alpha = _token(cli, "alpha")
    assert new_alpha.startswith("tok-") and new_alpha != "tok-alpha-original"
    assert _token(cli, "gamma").startswith("tok-")
    assert _token(cli, "beta") == "tok-beta-original"  # not due: untouched

    # only the broken one is still due; all of this run failed -> exit 5
    again = cli("secrets", "rotate", "--kind", "apitoken", "--due")
    assert again.code == 5 and "failed  apitoken broken" in again.out
    # a named target is rotated whether due or not, by name or by path
    forced = cli("secrets", "rotate", "beta", "providers/alpha", "--kind", "apitoken")
    assert forced.code == 0, forced.err
    assert "rotated apitoken alpha" in forced.out and "rotated apitoken beta" in forced.out
    assert _token(cli, "beta") != "tok-beta-original" and _token(cli, "alpha") != new_alpha
    # half a year later everything is due again
    cli.clock["now"] = NOW + timedelta(days=181)
    later = cli("secrets", "rotate", "--kind", "apitoken", "--due", "--dry-run", "-o", "json")
    assert [i["target"] for i in later.json()["items"]] == ["alpha", "beta", "broken", "gamma"]

    events = _audit(cli)
    rotated = [(e["action"], e["resource"], e["result"]) for e in events if "rotate" in e["action"]]
    assert rotated == [
        ("secret.rotate", "secret/providers/alpha", "ok"),
        ("secret.rotate", "secret/providers/broken", "error"),
        ("secret.rotate", "secret/providers/gamma", "ok"),
        ("secret.rotate", "secret/providers/broken", "error"),
        ("secret.rotate", "secret/providers/alpha", "ok"),
        ("secret.rotate", "secret/providers/beta", "ok"),
    ]
    steps = [(e["action"], e["resource"]) for e in events if e["action"].startswith("apitoken.")]
    assert ("apitoken.store", "secret/providers/gamma") in steps
    assert ("apitoken.issue", "secret/providers/broken") in steps
    assert all(e["tenant"] == "acme" for e in events if "rotate" in e["action"])
    dumped = json.dumps(events)
    for name in ("alpha", "beta", "gamma"):
        assert _token(cli, name) not in dumped
    assert "tok-alpha-original" not in dumped


def test_rotate_usage_errors(cli, apitoken_kind):
    assert cli("secrets", "rotate", "--kind", "nosuch").code == 2
    res = cli("secrets", "rotate", "nobody", "--kind", "apitoken")
    assert res.code == 2 and "nothing to rotate named nobody" in res.err
    assert cli("secrets", "rotate", "alpha", "--due", "--kind", "apitoken").code == 2
    registry.register("later", "penguinctl.secret_rotation.not_written_yet:Later")
    try:
        res = cli("secrets", "rotate", "--kind", "later")
        assert res.code == 2 and "not available in this installation" in res.err
    finally:
        registry.unregister("later")


def test_dkim_keys_rotate_through_the_contract(cli):
    assert cli("init").code == 0
    assert cli("apply", "-f", QUICKSTART, "--yes").code == 0
    listed = cli("secrets", "rotate", "--kind", "dkim", "-o", "json")
    assert listed.code == 0, listed.err
    items = {i["target"]: i for i in listed.json()["items"]}
    assert sorted(items) == ["acme-growth.example", "acme-mail.example", "acme-outreach.example"]
    mail = items["acme-mail.example"]
    assert mail["path"] == "tenants/acme/domains/acme-mail.example/dkim/pm202611"
    assert mail["due"] is False and mail["period_days"] == 180 and mail["step"] == "rotate"
    assert cli("secrets", "rotate", "--kind", "dkim", "--due", "-o", "json").json()["results"] == []

    # named: a new key now (generated, then published: the zone file has its record)
    res = cli("secrets", "rotate", "acme-mail.example", "--kind", "dkim", "-o", "json")
    assert res.code == 0, res.err
    (result,) = res.json()["results"]
    assert result["result"] == "rotated"
    assert result["summary"] == "rotate pm20261123; publish pm20261123"
    stored = cli.secrets.stored()
    assert "tenants/acme/domains/acme-mail.example/dkim/pm20261123" in stored
    assert "tenants/acme/domains/acme-mail.example/dkim/pm202611" in stored  # still signing
    # in progress: the next step (activate) is due after the propagation time (48h)
    listed = cli("secrets", "rotate", "--kind", "dkim", "-o", "json").json()
    mail = next(i for i in listed["items"] if i["target"] == "acme-mail.example")
    assert mail["step"] == "activate" and mail["due"] is False
    cli.clock["now"] = clock.now() + timedelta(days=3)
    dry = cli("secrets", "rotate", "--kind", "dkim", "--due", "--dry-run", "-o", "json").json()
    assert [i["target"] for i in dry["items"]] == ["acme-mail.example"]
    res = cli("secrets", "rotate", "--kind", "dkim", "--due", "-o", "json")
    assert res.code == 0, res.err
    assert res.json()["results"][0]["summary"] == "activate pm20261123"
    status = cli("dkim", "status", "acme-mail.example", "-o", "json").json()["domains"][0]
    assert {k["selector"]: k["phase"] for k in status["keys"]} == {
        "pm202611": "retiring",
        "pm20261123": "active",
    }
    actions = [e["action"] for e in _audit(cli)]
    assert "dkim.published" in actions and "dkim.activate" in actions
    assert actions.count("secret.rotate") == 2


def test_a_broken_kind_does_not_stop_the_others(cli, apitoken_kind, tmp_path, monkeypatch):
    (tmp_path / "broken_kind.py").write_text("import not_installed_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register("brokenkind", "broken_kind:Broken")
    try:
        res = cli("secrets", "rotate", "--kind", "brokenkind", "--kind", "apitoken", "--due")
    finally:
        registry.unregister("brokenkind")
    assert res.code == 6, res.err  # the API tokens were rotated, the broken kind reported
    assert "rotated apitoken gamma" in res.out
    assert "failed  brokenkind" in res.out and "broken_kind cannot be imported" in res.out
