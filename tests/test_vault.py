"""The Vault KV v2 secrets backend (hvac against a local double), `secrets` commands and apply on
Vault. Values never reach the state store, the audit log or the output unless revealed."""

from __future__ import annotations

import io
import json
import shutil
import socket

import hvac
import hvac.exceptions
import pytest
from clitools import QUICKSTART, run_inprocess
from fakes.vault import FakeVault

from penguinctl.errors import ConfigError, SecretError
from penguinctl.providers.secrets.resolve import resolve
from penguinctl.providers.secrets.vault import VaultBackend, VaultConfig
from penguinctl.settings import load_settings

DOMAINS = ["acme-growth.example", "acme-mail.example", "acme-outreach.example"]
SELECTOR = "pm202611"  # PENGUINCTL_TODAY=2026-11-23
# The minimal policy documented in the README (mount "secret", prefix "penguinctl/").
README_POLICY = [
    ("secret/data/penguinctl/*", {"create", "read", "update"}),
    ("secret/metadata/penguinctl/*", {"list", "read", "delete"}),
]


@pytest.fixture
def vault():
    with FakeVault() as fake:
        fake.add_token("app-token", README_POLICY)
        yield fake


def _env(vault: FakeVault, **extra: str) -> dict[str, str]:
    return {"VAULT_ADDR": vault.url, "VAULT_TOKEN": "app-token", **extra}


@pytest.fixture
def backend(vault):
    return VaultBackend.from_env(_env(vault))


def _root(vault: FakeVault) -> hvac.Client:
    return hvac.Client(url=vault.url, token=vault.token)


# -- backend ------------------------------------------------------------------------------------
def test_round_trip_versions_and_metadata(vault, backend):
    assert backend.get("providers/cf") is None
    assert backend.metadata("providers/cf") is None and backend.meta("providers/cf") is None
    first = backend.put("providers/cf", {"api_token": "tok-1"})
    assert first.version == 1
    second = backend.put("providers/cf", {"api_token": "tok-2", "account": "a1"})
    assert second.version == 2
    fields = backend.get("providers/cf")
    assert {k: v.reveal() for k, v in fields.items()} == {"api_token": "tok-2", "account": "a1"}
    assert "tok-2" not in repr(fields)
    assert backend.exists("providers/cf")
    # stored at <mount>/data/<prefix><path>
    assert vault.dump("penguinctl/providers/cf") == {"api_token": "tok-2", "account": "a1"}

    md = backend.metadata("providers/cf")
    assert md.current_version == 2 and [v.version for v in md.versions] == [1, 2]
    assert md.created_at == md.versions[0].created_at and md.updated_at
    assert backend.meta("providers/cf").version == 2
    root = VaultBackend.from_env({**_env(vault), "VAULT_TOKEN": vault.token})
    root.set_custom_metadata("providers/cf", {"rotation_policy": "90_days"})
    assert root.metadata("providers/cf").custom_metadata == {"rotation_policy": "90_days"}
    assert json.dumps(md.to_json())  # serialisable, and no values in it
    assert "tok-" not in json.dumps(md.to_json())

    # other writers' values that are not strings come back as JSON text
    _root(vault).secrets.kv.v2.create_or_update_secret(
        path="penguinctl/misc", secret={"n": 3, "ok": True}
    )
    assert {k: v.reveal() for k, v in backend.get("misc").items()} == {"n": "3", "ok": "true"}


def test_mount_and_prefix_are_configurable(vault):
    vault.mounts["kv"] = {}
    vault.config["kv"] = {"max_versions": 0, "cas_required": False}
    env = {**_env(vault), "VAULT_TOKEN": vault.token}
    custom = VaultBackend.from_env(
        {**env, "PENGUINCTL_VAULT_MOUNT": "kv", "PENGUINCTL_VAULT_PREFIX": "/ops/pc"}
    )
    assert (custom.mount, custom.prefix) == ("kv", "ops/pc/")
    custom.put("a/b", {"k": "v"})
    assert vault.dump("ops/pc/a/b", mount="kv") == {"k": "v"}
    assert custom.list() == ["a/b"]
    bare = VaultBackend.from_env({**env, "PENGUINCTL_VAULT_PREFIX": ""})
    bare.put("top", {"k": "v"})
    assert vault.dump("top") == {"k": "v"}
    assert custom.api_path("data", "a/b") == "kv/data/ops/pc/a/b"
    with pytest.raises(SecretError, match="invalid secret path"):
        custom.get("a/../b")


def test_check_and_set_conflict_retries_once_then_fails(vault, backend, monkeypatch):
    backend.put("servers/mx1/mailu", {"admin_password": "p1"})
    other = VaultBackend.from_env(_env(vault))
    real_read = backend._read
    races = {"left": 1}

    def racing_read(full):
        result = real_read(full)
        if races["left"]:
            races["left"] -= 1
            other.put("servers/mx1/mailu", {"admin_password": "concurrent"})
        return result

    monkeypatch.setattr(backend, "_read", racing_read)
    meta = backend.put("servers/mx1/mailu", {"admin_password": "p2"})
    assert meta.version == 3  # v2 by the other writer, then ours after one retry
    assert backend.get("servers/mx1/mailu")["admin_password"].reveal() == "p2"

    races["left"] = 99  # the other writer always wins
    with pytest.raises(SecretError, match="check-and-set failed twice") as err:
        backend.put("servers/mx1/mailu", {"admin_password": "never"})
    assert "never" not in str(err.value)
    writes = [r for r in vault.requests if r.method in ("POST", "PUT") and "/data/" in r.path]
    assert writes[-1].status == 400

    # the double enforces CAS for hvac directly too
    client = _root(vault)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="did not match"):
        client.secrets.kv.v2.create_or_update_secret(
            path="penguinctl/servers/mx1/mailu", secret={"x": "1"}, cas=0
        )
    client.secrets.kv.v2.configure(cas_required=True)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="required"):
        client.secrets.kv.v2.create_or_update_secret(path="penguinctl/new", secret={"x": "1"})
    monkeypatch.undo()
    assert backend.put("new", {"x": "1"}).version == 1  # the backend always sends cas


def test_soft_deleted_latest_version_is_missing(vault, backend):
    client = _root(vault)
    backend.put("mailboxes/john@acme.example", {"password": "one"})
    backend.put("mailboxes/john@acme.example", {"password": "two"})
    client.secrets.kv.v2.delete_latest_version_of_secret(
        path="penguinctl/mailboxes/john@acme.example"
    )
    assert backend.get("mailboxes/john@acme.example") is None
    old = client.secrets.kv.v2.read_secret_version(
        path="penguinctl/mailboxes/john@acme.example", version=1, raise_on_deleted_version=True
    )
    assert old["data"]["data"] == {"password": "one"}
    # a new write continues the version sequence (CAS against the deleted latest version)
    assert backend.put("mailboxes/john@acme.example", {"password": "three"}).version == 3
    client.secrets.kv.v2.destroy_secret_versions(
        path="penguinctl/mailboxes/john@acme.example", versions=[3]
    )
    assert backend.get("mailboxes/john@acme.example") is None
    client.secrets.kv.v2.undelete_secret_versions(
        path="penguinctl/mailboxes/john@acme.example", versions=[2]
    )
    md = backend.metadata("mailboxes/john@acme.example")
    assert [(v.version, bool(v.deleted_at), v.destroyed) for v in md.versions] == [
        (1, False, False),
        (2, False, False),
        (3, False, True),
    ]

    backend.delete("mailboxes/john@acme.example")  # destroys everything
    assert backend.metadata("mailboxes/john@acme.example") is None
    assert vault.paths() == []
    backend.delete("mailboxes/john@acme.example")  # missing: not an error


def test_list_is_recursive_and_sorted(vault, backend):
    for path in [
        "providers/cloudflare",
        "domains/b.example/dkim/pm202611",
        "domains/a.example/dkim/pm202612",
        "domains/a.example/dkim/pm202611",
        "domains/a.examplex/dkim/pm202611",
        "servers/mx1/ssh",
    ]:
        backend.put(path, {"k": "v"})
    _root(vault).secrets.kv.v2.create_or_update_secret(path="elsewhere", secret={"k": "v"})
    assert backend.list() == [
        "domains/a.example/dkim/pm202611",
        "domains/a.example/dkim/pm202612",
        "domains/a.examplex/dkim/pm202611",
        "domains/b.example/dkim/pm202611",
        "providers/cloudflare",
        "servers/mx1/ssh",
    ]
    assert backend.list("domains/a.example/") == [
        "domains/a.example/dkim/pm202611",
        "domains/a.example/dkim/pm202612",
    ]
    assert backend.list("domains/a.example") == [  # a string prefix, like the keystore
        *backend.list("domains/a.example/"),
        "domains/a.examplex/dkim/pm202611",
    ]
    assert backend.list("nothing/here") == []
    assert any(r.method == "LIST" for r in vault.requests)
    # GET ?list=true (hvac with strict_http) is answered the same way
    strict = hvac.Client(url=vault.url, token=vault.token, strict_http=True)
    keys = strict.secrets.kv.v2.list_secrets(path="penguinctl/domains")["data"]["keys"]
    assert keys == ["a.example/", "a.examplex/", "b.example/"]
    assert vault.requests[-1].method == "GET" and vault.requests[-1].query == {"list": "true"}


def test_sealed_vault_is_a_clear_error(vault, backend):
    backend.put("x/y", {"k": "v"})
    vault.sealed = True
    with pytest.raises(SecretError, match="is sealed"):
        backend.get("x/y")  # a connected client: the request gets 503
    with pytest.raises(SecretError, match=r"Vault at http://127\.0\.0\.1:\d+ is sealed \("):
        VaultBackend.from_env(_env(vault)).get("x/y")  # a new client: sys/health says 503
    assert _root(vault).sys.read_health_status(method="GET").status_code == 503
    vault.sealed = False
    assert backend.get("x/y")["k"].reveal() == "v"


def test_permission_denied_names_path_and_capability(vault):
    vault.add_token("reader", [("secret/data/penguinctl/*", {"read"})])
    reader = VaultBackend.from_env(_env(vault, VAULT_TOKEN="reader"))
    assert reader.get("providers/cf") is None
    cases = [
        (
            lambda: reader.put("providers/cf", {"k": "s3cr3t"}),
            "create",
            "data/penguinctl/providers/cf",
        ),
        (lambda: reader.list(), "list", "metadata/penguinctl/"),
        (lambda: reader.delete("providers/cf"), "delete", "metadata/penguinctl/providers/cf"),
        (lambda: reader.metadata("providers/cf"), "read", "metadata/penguinctl/providers/cf"),
    ]
    for call, capability, path in cases:
        with pytest.raises(SecretError) as err:
            call()
        text = str(err.value)
        assert f"Vault denied '{capability}' on secret/{path}" in text, text
        assert "\n" not in text and "s3cr3t" not in text
    VaultBackend.from_env(_env(vault, VAULT_TOKEN=vault.token)).put("providers/cf", {"k": "1"})
    with pytest.raises(SecretError, match="'update' on secret/data/penguinctl/providers/cf"):
        reader.put("providers/cf", {"k": "2"})
    outside = VaultBackend.from_env(
        _env(vault, VAULT_TOKEN="app-token", PENGUINCTL_VAULT_PREFIX="x")
    )
    with pytest.raises(SecretError, match="'read' on secret/data/x/y"):
        outside.get("y")
    bogus = VaultBackend.from_env(_env(vault, VAULT_TOKEN="expired"))
    with pytest.raises(SecretError, match=r"rejected VAULT_TOKEN: the token is invalid or expired"):
        bogus.get("providers/cf")


def test_unreachable_missing_token_and_unconfigured():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = VaultBackend.from_env({"VAULT_ADDR": f"http://127.0.0.1:{port}", "VAULT_TOKEN": "t"})
    with pytest.raises(SecretError, match=r"Vault at http://127\.0\.0\.1:\d+ is unreachable"):
        down.get("a")
    with pytest.raises(SecretError, match="VAULT_TOKEN is not set"):
        VaultBackend.from_env({"VAULT_ADDR": "http://127.0.0.1:1"}).get("a")
    with pytest.raises(SecretError, match="VAULT_ADDR is not set"):
        VaultBackend.from_env({"VAULT_TOKEN": "t"})
    cfg = VaultConfig.from_env(
        {
            "VAULT_ADDR": "https://127.0.0.1:8200/",
            "VAULT_TOKEN": "hvs.very-secret",
            "VAULT_CACERT": "/etc/ca.pem",
            "VAULT_SKIP_VERIFY": "true",
            "VAULT_NAMESPACE": "team/a",
        }
    )
    assert cfg.addr == "https://127.0.0.1:8200" and cfg.skip_verify and cfg.cacert == "/etc/ca.pem"
    assert (cfg.mount, cfg.prefix, cfg.namespace) == ("secret", "penguinctl/", "team/a")
    assert "very-secret" not in repr(cfg)


def test_approle_login_and_namespace(vault):
    vault.add_approle("role-1", "secret-1", README_POLICY)
    env = {"VAULT_ADDR": vault.url, "VAULT_ROLE_ID": "role-1", "VAULT_SECRET_ID": "secret-1"}
    backend = VaultBackend.from_env({**env, "VAULT_NAMESPACE": "tenants/acme"})
    backend.put("servers/mx1/ssh", {"private_key": "k"})
    assert backend.get("servers/mx1/ssh")["private_key"].reveal() == "k"
    logins = [r for r in vault.requests if r.path == "auth/approle/login"]
    assert len(logins) == 1 and logins[0].status == 200
    assert {r.namespace for r in vault.requests if r.path != "sys/health"} == {"tenants/acme"}
    with pytest.raises(SecretError, match=r"AppRole login at auth/approle .* failed: invalid role"):
        VaultBackend.from_env({**env, "VAULT_SECRET_ID": "wrong"}).get("x")


def test_vault_references(vault, backend, tmp_path):
    _root(vault).secrets.kv.v2.create_or_update_secret(
        path="dns/tsig", secret={"secret": "dHNpZw=="}
    )
    env = _env(vault, VAULT_TOKEN=vault.token)
    # relative to the mount, not to penguinctl's prefix; works whatever the configured backend
    assert resolve("vault:dns/tsig#secret", secrets=None, env=env).reveal() == "dHNpZw=="
    root = VaultBackend.from_env(env)
    assert resolve("vault:dns/tsig#secret", secrets=root, env={}).reveal() == "dHNpZw=="
    with pytest.raises(SecretError, match=r"vault:dns/tsig#nope: .*has no field 'nope'"):
        resolve("vault:dns/tsig#nope", secrets=root)
    with pytest.raises(SecretError, match="secret/data/dns/none does not exist"):
        resolve("vault:dns/none#k", secrets=root)
    with pytest.raises(SecretError, match=r"vault:dns/tsig#secret: Vault denied 'read'"):
        resolve("vault:dns/tsig#secret", secrets=None, env=_env(vault))
    # keystore: references read field "value" from whichever backend is configured
    backend.put("providers/cf", {"value": "tok"})
    assert resolve("keystore:providers/cf", secrets=backend).reveal() == "tok"
    with pytest.raises(SecretError, match="not found in the vault"):
        resolve("keystore:providers/none", secrets=backend)


def test_backend_selection(vault, tmp_path):
    from penguinctl.cli.context import AppContext
    from penguinctl.providers.secrets.keystore import KeystoreBackend

    home = {"PENGUINCTL_HOME": str(tmp_path)}
    assert load_settings(home).secrets_backend == "keystore"
    with pytest.raises(ConfigError, match="PENGUINCTL_SECRETS='consul'"):
        load_settings({**home, "PENGUINCTL_SECRETS": "consul"})
    env = {**home, **_env(vault), "PENGUINCTL_SECRETS": "Vault"}
    app = AppContext(settings=load_settings(env), env=env)
    assert isinstance(app.secrets(), VaultBackend) and app.secrets() is app.secrets()
    assert isinstance(app.keystore(), KeystoreBackend)
    assert isinstance(AppContext(settings=load_settings(home), env=home).secrets(), KeystoreBackend)


def test_hvac_is_imported_lazily():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import penguinctl.providers.secrets.vault, penguinctl.providers.secrets.resolve\n"
        "from penguinctl.cli import build_app\n"
        "build_app()\n"
        "print([m for m in ('hvac', 'requests') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- CLI ----------------------------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, vault):
    home = tmp_path / "home"
    monkeypatch.setenv("PENGUINCTL_HOME", str(home))
    monkeypatch.delenv("PENGUINCTL_STATE", raising=False)
    monkeypatch.delenv("PENGUINCTL_MASTER_KEY", raising=False)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    for var in ("VAULT_NAMESPACE", "VAULT_ROLE_ID", "VAULT_SECRET_ID", "PENGUINCTL_VAULT_PREFIX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VAULT_ADDR", vault.url)
    monkeypatch.setenv("VAULT_TOKEN", "app-token")
    monkeypatch.setenv("PENGUINCTL_SECRETS", "vault")

    def run(*args, stdin=None, backend=None):
        if backend:
            monkeypatch.setenv("PENGUINCTL_SECRETS", backend)
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin or ""))
        try:
            return run_inprocess(capsys, *args)
        finally:
            monkeypatch.setenv("PENGUINCTL_SECRETS", "vault")

    run.home = home
    run.vault = vault
    return run


def _audit(cli, resource="secret"):
    res = cli("state", "audit", "-r", resource, "-o", "json")
    assert res.code == 0, res.err
    return res.json()


def test_secrets_put_get_list_and_audit(cli, tmp_path):
    value = "cf-token-0123456789"
    res = cli("secrets", "put", "providers/cloudflare", stdin=f"# token\napi_token={value}\n")
    assert res.code == 0, res.err
    assert "version 1" in res.out and value not in res.out + res.err
    assert cli.vault.dump("penguinctl/providers/cloudflare") == {"api_token": value}

    body = tmp_path / "mailu.json"
    body.write_text(json.dumps({"admin_password": "pw-A=B", "api_token": "mailu-tok"}))
    res = cli("secrets", "put", "servers/mx1/mailu", "--file", body, "-o", "json")
    assert res.code == 0, res.err
    assert res.json() == {
        "backend": "vault",
        "path": "servers/mx1/mailu",
        "version": 1,
        "fields": ["admin_password", "api_token"],
    }
    assert cli("secrets", "put", "x", stdin="").code == 2
    bad = cli("secrets", "put", "x", stdin="novalue-line\n")
    assert bad.code == 2 and ":1: expected KEY=VALUE" in bad.err and "novalue" not in bad.err

    res = cli("secrets", "list", "-o", "json")
    assert res.json()["paths"] == ["providers/cloudflare", "servers/mx1/mailu"]
    assert cli("secrets", "list", "servers").out.strip() == "servers/mx1/mailu"

    masked = cli("secrets", "get", "servers/mx1/mailu")
    assert masked.code == 0, masked.err
    assert "admin_password: ******" in masked.out and "pw-A=B" not in masked.out
    assert "version 1" in masked.out
    data = cli("secrets", "get", "servers/mx1/mailu", "-o", "json").json()
    assert data["fields"] == {"admin_password": "******", "api_token": "******"}
    assert data["version"] == 1 and data["created_at"]
    shown = cli("secrets", "get", "servers/mx1/mailu", "--reveal", "-o", "json")
    assert shown.json()["fields"] == {"admin_password": "pw-A=B", "api_token": "mailu-tok"}
    missing = cli("secrets", "get", "servers/none")
    assert missing.code == 2 and "not in the vault" in missing.err

    events = _audit(cli)
    actions = [(e["action"], e["resource"], e["result"]) for e in reversed(events)]
    assert actions == [
        ("secret.write", "secret/providers/cloudflare", "ok"),
        ("secret.write", "secret/servers/mx1/mailu", "ok"),
        ("secret.list", "secret", "ok"),
        ("secret.list", "secret/servers", "ok"),
        ("secret.read", "secret/servers/mx1/mailu", "ok"),
        ("secret.read", "secret/servers/mx1/mailu", "ok"),
        ("secret.reveal", "secret/servers/mx1/mailu", "ok"),
        ("secret.read", "secret/servers/none", "missing"),
    ]
    assert all(e["actor"] for e in events)
    dumped = json.dumps(events)
    for secret in (value, "pw-A=B", "mailu-tok"):
        assert secret not in dumped


def test_secrets_errors_are_one_line_and_audited(cli, monkeypatch):
    cli.vault.add_token("reader", [("secret/data/penguinctl/*", {"read"})])
    monkeypatch.setenv("VAULT_TOKEN", "reader")
    res = cli("secrets", "put", "providers/x", stdin="k=s3cr3t\n")
    assert res.code == 5
    assert res.err.strip().splitlines() == [res.err.strip()]
    assert "Vault denied 'create' on secret/data/penguinctl/providers/x" in res.err
    assert "s3cr3t" not in res.err
    (event,) = _audit(cli, "secret/providers/x")
    assert (event["action"], event["result"]) == ("secret.write", "error")
    cli.vault.sealed = True
    res = cli("secrets", "list")
    assert res.code == 5 and "sealed" in res.err


def test_migrate_to_vault_verifies_and_is_idempotent(cli):
    assert cli("init").code == 0
    secrets = {f"mailboxes/user{i}@acme.example": {"password": f"pw-{i}"} for i in range(5)}
    secrets["providers/cloudflare"] = {"api_token": "cf-tok", "account": "acc"}
    for path, fields in secrets.items():
        lines = "".join(f"{k}={v}\n" for k, v in fields.items())
        assert cli("secrets", "put", path, stdin=lines, backend="keystore").code == 0
    # one already in Vault and identical, one in Vault but stale
    root = VaultBackend.from_env({"VAULT_ADDR": cli.vault.url, "VAULT_TOKEN": cli.vault.token})
    root.put("mailboxes/user0@acme.example", {"password": "pw-0"})
    root.put("mailboxes/user1@acme.example", {"password": "stale"})

    res = cli("secrets", "migrate", "--to", "vault", "--verify", "-o", "json")
    assert res.code == 0, res.err
    assert res.json() == {
        "to": "vault",
        "counts": {"total": 6, "copied": 5, "skipped": 1, "verified": 6, "failed": 0},
        "failed": [],
    }
    for path, fields in secrets.items():
        assert cli.vault.dump(f"penguinctl/{path}") == fields
    again = cli("secrets", "migrate", "--to", "vault")
    assert again.code == 0, again.err
    assert "6 secret(s): 0 copied, 6 already in Vault." in again.out
    assert root.meta("mailboxes/user2@acme.example").version == 1  # nothing rewritten
    assert cli("secrets", "migrate", "--to", "consul").code == 2

    events = _audit(cli, "secret/mailboxes/user3")
    assert [(e["action"], e["result"]) for e in reversed(events)] == [
        ("secret.write", "ok"),
        ("secret.migrate", "copied"),
        ("secret.migrate", "skipped"),
    ]
    assert "pw-3" not in json.dumps(_audit(cli))


def _dkim_paths():
    return [f"penguinctl/tenants/acme/domains/{d}/dkim/{SELECTOR}" for d in DOMAINS]


def test_apply_keeps_dkim_keys_in_vault(cli):
    assert cli("init").code == 0
    first = cli("apply", "-f", QUICKSTART, "--yes", "-o", "json")
    assert first.code == 0, first.err
    assert cli.vault.paths() == _dkim_paths()
    for path in _dkim_paths():
        stored = cli.vault.dump(path)
        assert stored["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
        assert stored["public_key"].startswith("MII")
    assert list((cli.home / "keystore").rglob("*.secret")) == []
    second = cli("apply", "-f", QUICKSTART, "--yes")
    assert second.code == 0, second.err
    assert "No changes" in second.out
    plan = cli("plan", "-f", QUICKSTART, "--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out
    mine = "tenants/acme/domains/acme-mail.example/"
    listed = cli("secrets", "list", mine, "-o", "json").json()
    assert listed["paths"] == [f"{mine}dkim/{SELECTOR}"]


def test_migrate_then_apply_on_vault_plans_no_changes(cli):
    assert cli("init").code == 0
    first = cli("apply", "-f", QUICKSTART, "--yes", backend="keystore")
    assert first.code == 0, first.err
    keys = sorted(
        p.relative_to(cli.home / "keystore") for p in (cli.home / "keystore").rglob("*.secret")
    )
    assert len(keys) == 3
    res = cli("secrets", "migrate", "--to", "vault", "--verify", "-o", "json")
    assert res.code == 0, res.err
    assert res.json()["counts"] == {
        "total": 3,
        "copied": 3,
        "skipped": 0,
        "verified": 3,
        "failed": 0,
    }
    shutil.rmtree(cli.home / "keystore")  # from now on only Vault holds the keys
    plan = cli("plan", "-f", QUICKSTART, "--detailed-exitcode")
    assert plan.code == 0, plan.out + plan.err
    again = cli("apply", "-f", QUICKSTART, "--yes")
    assert again.code == 0 and "No changes" in again.out
    assert cli.vault.paths() == _dkim_paths()
    assert not (cli.home / "keystore").exists()


# The leak audit (state store, logs, plan files, audit log, outputs) is tests/test_leak_audit.py.
