"""`server exec` and `server trust-hostkey` through the CLI against real sshd servers on 127.0.0.x:
parallel fan-out, an unreachable server failing alone, a changed host key refused until trusted."""

from __future__ import annotations

import pytest
from clitools import run_inprocess
from sshd import SshServer, free_port, keygen


def _spec(servers: list[tuple[str, str, int]]) -> str:
    docs = ["apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: acme}\n"]
    for name, address, port in servers:
        docs.append(
            "apiVersion: penguinctl/v1\nkind: Server\n"
            f"metadata: {{name: {name}, tenant: acme}}\n"
            "spec:\n  provider: static\n"
            f"  static: {{address: {address}, ssh_user: root, ssh_port: {port}}}\n"
            f"  hostname: {name}.acme-mail.example\n"
        )
    return "---\n".join(docs)


@pytest.fixture(scope="module")
def client_key(tmp_path_factory):
    return keygen(tmp_path_factory.mktemp("keys") / "id_ed25519")


@pytest.fixture
def hosts(tmp_path, client_key):
    servers = []
    try:
        for address in ("127.0.0.2", "127.0.0.3"):
            srv = SshServer(tmp_path / address, address, authorized_keys=[client_key[1]])
            servers.append(srv.start())
        yield servers
    finally:
        for srv in servers:
            srv.stop()


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, state_url, hosts, client_key):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    spec = tmp_path / "spec.yaml"
    dead = ("mx3", "127.0.0.4", free_port("127.0.0.4"))  # nothing listens there
    spec.write_text(_spec([("mx1", hosts[0].address, hosts[0].port),
                           ("mx2", hosts[1].address, hosts[1].port), dead]))  # fmt: skip

    def run(*args):
        return run_inprocess(capsys, *args)

    assert run("apply", "-f", spec, "--yes").code == 0
    from penguinctl.providers.secrets.keystore import KeystoreBackend
    from penguinctl.settings import load_settings

    s = load_settings()
    ks = KeystoreBackend(s.keystore_dir, key_file=s.master_key_file, master_key=s.master_key)
    for name in ("mx1", "mx2", "mx3"):
        ks.put(f"servers/{name}/ssh", {"private_key": client_key[0]})
    return run


def test_exec_fans_out_and_isolates_the_unreachable(cli, client_key):
    res = cli("server", "exec", "echo hello from $(hostname -I 2>/dev/null || echo x); id -u",
              "--all", "-o", "json")  # fmt: skip
    assert res.code == 6, res.err  # partial: mx3 is unreachable, the others completed
    data = res.json()
    status = {h["host"]: h["status"] for h in data["hosts"]}
    assert status == {"mx1": "ok", "mx2": "ok", "mx3": "unreachable"}
    assert data["output"]["mx1"].strip().endswith("0")
    assert client_key[0].splitlines()[1] not in res.out + res.err
    ok = cli("server", "exec", "true", "mx1", "mx2")
    assert ok.code == 0, ok.err


def test_changed_host_key_is_refused_until_trusted(cli, hosts):
    assert cli("server", "exec", "true", "mx1").code == 0  # pins the key
    srv = hosts[0]
    old = srv.fingerprint
    srv.stop()
    srv.new_host_key()
    srv.start()
    res = cli("server", "exec", "touch /tmp/penguinctl-should-not-run", "mx1")
    assert res.code == 5
    assert old in res.err and srv.fingerprint in res.err
    assert "penguinctl server trust-hostkey mx1" in res.err
    trusted = cli("server", "trust-hostkey", "mx1", "-o", "json")
    assert trusted.code == 0 and trusted.json()["forgotten"] is True
    assert cli("server", "exec", "true", "mx1").code == 0
    audit = cli("state", "audit", "-o", "json").json()
    assert [e["action"] for e in audit if e["action"].startswith("hostkey.")][:3] == [
        "hostkey.pinned",
        "hostkey.forgotten",
        "hostkey.pinned",
    ]


def test_usage(cli):
    assert cli("server", "exec", "true").code == 2
    assert cli("server", "exec", "true", "nope").code == 2
