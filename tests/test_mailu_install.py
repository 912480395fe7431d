"""MailU installed by `apply` on a static server: a real sshd on 127.0.0.x whose `docker`, `apt-get`
and `dpkg-query` are recording shims, the MailU REST API double for domains and mailboxes.

Covers: bootstrap of penguinctl's admin key through the spec's initial key, the rendered
`mailu.env` / `docker-compose.yml` (validated against the Compose specification's JSON schema),
the rspamd per-domain DKIM override and keys, idempotency (a re-apply changes nothing and runs no
`up -d`), `apply --check` reporting drift without touching the host, and the DKIM signer switch.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml
from clitools import run_inprocess
from fakes.mailu import FakeMailu
from hostshims import RSPAMD_GID, install_shims
from sshd import SshServer, keygen

ADDRESS = "127.0.0.21"
TOKEN = "test-api-token-0123456789abcdef"
DOMAIN = "acme-mail.example"
DATA = Path(__file__).parent / "data"


def _spec(tmp: Path, port: int, api_url: str, root: Path) -> str:
    return f"""\
apiVersion: penguinctl/v1
kind: Tenant
metadata: {{name: acme}}
---
apiVersion: penguinctl/v1
kind: Server
metadata: {{name: mx1, tenant: acme}}
spec:
  provider: static
  static: {{address: {ADDRESS}, ssh_port: {port}, initial_key: "file:{tmp / "initial"}"}}
  hostname: mail.{DOMAIN}
  mail: {{stack: mailu, version: "2024.06", tls: letsencrypt, api_url: "{api_url}", root: {root}}}
---
apiVersion: penguinctl/v1
kind: DnsProvider
metadata: {{name: zones}}
spec: {{type: zonefile, directory: {tmp / "zones"}}}
---
apiVersion: penguinctl/v1
kind: Domain
metadata: {{name: {DOMAIN}, tenant: acme}}
spec:
  server: mx1
  dns: zones
  mailboxes:
    - {{local: john, display_name: John Smith, daily_limit: 40}}
    - {{local: sara, daily_limit: 600}}
"""


@pytest.fixture
def env(tmp_path, monkeypatch, capsys, state_url):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    _, initial_pub = keygen(tmp_path / "initial")
    shims = install_shims(tmp_path / "bin")
    root = tmp_path / "srv" / "mailu"
    server = SshServer(
        tmp_path / "sshd",
        ADDRESS,
        authorized_keys=[initial_pub],
        path_prefix=shims.directory,
        home=tmp_path / "root-home",
    )
    with server, FakeMailu(api_token=TOKEN, hostname=f"mail.{DOMAIN}") as mailu:
        spec = tmp_path / "tenant.yaml"
        spec.write_text(_spec(tmp_path, server.port, mailu.url, root))
        run = lambda *a: run_inprocess(capsys, *a)  # noqa: E731
        yield {
            "run": run, "spec": spec, "server": server, "mailu": mailu, "shims": shims,
            "root": root, "tmp": tmp_path,
        }  # fmt: skip


def _keystore():
    from penguinctl.providers.secrets.keystore import KeystoreBackend
    from penguinctl.settings import load_settings

    s = load_settings()
    return KeystoreBackend(s.keystore_dir, key_file=s.master_key_file, master_key=s.master_key)


@pytest.fixture
def installed(env, monkeypatch):
    # the operator chose the API token (MailU's setup asks for one); the rest is generated
    _keystore().put("tenants/acme/servers/mx1/mailu", {"api_token": TOKEN})
    res = env["run"]("apply", "-f", env["spec"], "--yes")
    assert res.code == 0, res.out + res.err
    return env


def test_apply_installs_mailu_and_reapply_changes_nothing(installed):
    env = installed
    root: Path = env["root"]
    ks = _keystore()

    # bootstrap: penguinctl's own admin key is installed next to the initial one
    admin = ks.get("tenants/acme/servers/mx1/ssh")
    assert admin is not None and "private_key" in admin
    lines = (env["tmp"] / "root-home" / ".ssh" / "authorized_keys").read_text().splitlines()
    assert admin["public_key"].reveal() in lines and len(lines) == 2

    # mailu.env: secrets from the backend, mode 0600, the rate limit above the largest mailbox
    envfile = root / "mailu.env"
    assert stat.S_IMODE(envfile.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in envfile.read_text().splitlines() if "=" in line)
    creds = ks.get("tenants/acme/servers/mx1/mailu")
    assert values["API_TOKEN"] == TOKEN
    assert values["SECRET_KEY"] == creds["secret_key"].reveal()
    assert len(values["SECRET_KEY"]) == 16 and values["SECRET_KEY"].isalnum()
    assert values["INITIAL_ADMIN_PW"] == creds["admin_password"].reveal()
    assert values["HOSTNAMES"].split(",")[0] == f"mail.{DOMAIN}"
    assert values["MESSAGE_RATELIMIT"] == "1200/day"  # 2 x the largest daily_limit (600)
    assert values["TLS_FLAVOR"] == "letsencrypt" and values["API"] == "true"

    # docker-compose.yml: valid per the Compose specification, pinned images, our DKIM mount
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    import jsonschema

    schema = json.loads((DATA / "compose-spec.json").read_text())
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(compose))
    assert errors == [], [e.message for e in errors]
    services = compose["services"]
    for name, svc in services.items():
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on undefined {dep}"
        if name != "redis":
            assert svc["image"].endswith(":${MAILU_VERSION:-2024.06}"), svc["image"]
        for vol in svc.get("volumes", []):
            assert vol.startswith(str(root) + "/"), vol
    assert f"{root}/dkim-sign:/dkim-sign:ro" in services["antispam"]["volumes"]
    published = [p.rsplit(":", 1)[1] for p in services["front"]["ports"]]
    assert sorted(published, key=int) == ["25", "80", "443", "465", "587", "993"]

    # rspamd: the override outranks MailU's vault settings; the domain's key and maps are there
    override = (root / "overrides" / "rspamd" / "dkim_signing.conf").read_text()
    assert override.splitlines()[0] == ".priority 2" and "use_vault = false;" in override
    (selector,) = [p.split("/")[-1] for p in ks.list(f"tenants/acme/domains/{DOMAIN}/dkim/")]
    keyfile = root / "dkim-sign" / f"{DOMAIN}.{selector}.key"
    stored = ks.get(f"tenants/acme/domains/{DOMAIN}/dkim/{selector}")
    assert keyfile.read_text() == stored["private_key"].reveal()
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o640 and keyfile.stat().st_gid == RSPAMD_GID
    assert f"{DOMAIN} {selector}" in (root / "dkim-sign" / "selectors.map").read_text()
    assert (
        f"{DOMAIN} /dkim-sign/$domain.$selector.key"
        in (root / "dkim-sign" / "paths.map").read_text()
    )

    # the stack came up once, with the packages installed through apt
    calls = env["shims"].calls()
    assert sum(" up -d" in c for c in calls) == 1
    assert "docker.io" in env["shims"].packages()

    # domains and mailboxes through the REST API
    assert DOMAIN in env["mailu"].domains
    assert {f"john@{DOMAIN}", f"sara@{DOMAIN}"} <= set(env["mailu"].users)

    # a second apply changes nothing: no plan, no compose up, no package install
    env["shims"].clear()
    res = env["run"]("plan", "-f", env["spec"], "--detailed-exitcode")
    assert res.code == 0, res.out + res.err
    res = env["run"]("apply", "-f", env["spec"], "--yes")
    assert res.code == 0, res.out + res.err
    assert not any(" up -d" in c or c.startswith("apt-get") for c in env["shims"].calls())


def test_apply_check_reports_drift_without_changing_the_host(installed):
    env = installed
    res = env["run"]("-o", "json", "apply", "--check", "-f", env["spec"])
    assert res.code == 0, res.out + res.err
    hosts = res.json()["hosts"]
    assert [h["changed"] for h in hosts] == [[]]

    compose = env["root"] / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("restart: always", "restart: no", 1))
    (env["root"] / "mailu.env").write_text("SECRET_KEY=tampered\n")
    env["shims"].clear()
    res = env["run"]("-o", "json", "apply", "--check", "--detailed-exitcode", "-f", env["spec"])
    assert res.code == 2, res.out + res.err  # drift found, as plan --detailed-exitcode
    (host,) = res.json()["hosts"]
    assert set(host["changed"]) >= {"docker-compose.yml", "mailu.env", "stack up"}
    diffs = {s["name"]: s["diff"] for s in host["steps"] if s["diff"]}
    assert "-    restart: no" in diffs["docker-compose.yml"]
    assert "tampered" not in res.out and TOKEN not in res.out  # secret file: no content shown
    assert "restart: no" in compose.read_text()  # nothing was changed
    assert not any(" up -d" in c for c in env["shims"].calls())


def test_signer_switch_points_rspamd_at_the_new_selector(installed):
    from penguinctl.dkim import generate_rsa
    from penguinctl.providers.signers import signer_for
    from penguinctl.settings import load_settings
    from penguinctl.state.db import make_engine

    env = installed
    ks = _keystore()
    pair = generate_rsa(2048)
    ks.put(f"tenants/acme/domains/{DOMAIN}/dkim/pm202705", {"private_key": pair.private_pem})
    engine = make_engine(load_settings().state_url)
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    with session_scope(engine) as session:
        (row,) = repo.list_resources(session, kind="server", name="mx1")
        server = dict(row.data)
    signer = signer_for("mx1", server, secrets=ks, db=engine, env={})
    note = signer.switch(DOMAIN, "pm202705", f"tenants/acme/domains/{DOMAIN}/dkim/pm202705")
    assert "pm202705" in note
    sign_dir = env["root"] / "dkim-sign"
    assert f"{DOMAIN} pm202705" in (sign_dir / "selectors.map").read_text()
    keys = sorted(p.name for p in sign_dir.glob("*.key"))
    assert keys == [f"{DOMAIN}.pm202705.key"]  # the old selector's key file is gone
    again = signer.switch(DOMAIN, "pm202705", f"tenants/acme/domains/{DOMAIN}/dkim/pm202705")
    assert "already signing" in again
    engine.dispose()
