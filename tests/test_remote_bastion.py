"""Jump hosts against real sshd: the target lives in a network namespace of its own and only the
bastion reaches it (tests/bastion.py), so every success below went through the bastion.

Covers the transport (a direct connection is refused, the same one through the bastion works,
per-hop pins), `server exec` / `server playbook` / `server ssh` through a jump Server, `apply`
bootstrapping both admin keys and installing MailU through it, a changed bastion host key
refused everywhere until trusted, and a jump host given as an ~/.ssh/config alias (HostName,
Port, User, IdentityFile: the operator's own identity) both as `ssh.via: ssh://ALIAS` and as the
config's `ProxyJump`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from bastion import BastionSshServer, HiddenSshServer
from clitools import run_inprocess, run_subprocess
from sshd import keygen

from penguinctl.remote.errors import HostKeyChanged, SshUnreachable
from penguinctl.remote.hostkeys import MemoryHostKeyStore
from penguinctl.remote.ssh import SshConnection, SshOptions

TARGET, BASTION = "127.0.0.3", "127.0.0.2"
FAST = SshOptions(connect_timeout=5, banner_timeout=5, auth_timeout=5, retries=0)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    return {"admin": keygen(d / "admin"), "operator": keygen(d / "operator")}


@pytest.fixture
def net(tmp_path, keys):
    """The hidden target and the bastion in front of it (both accept the admin key)."""
    target = HiddenSshServer(tmp_path / "target", TARGET, authorized_keys=[keys["admin"][1]])
    with target:
        bastion = BastionSshServer(
            tmp_path / "bastion", BASTION, authorized_keys=[keys["admin"][1]], inner=target
        )
        with bastion:
            yield target, bastion


# -- the transport ------------------------------------------------------------------------------
def test_the_target_refuses_direct_connections_and_answers_through_the_bastion(net, keys, tmp_path):
    target, bastion = net
    store = MemoryHostKeyStore()
    key = keys["admin"][0]
    with pytest.raises(SshUnreachable):
        SshConnection(TARGET, target.port, "root", key, host_keys=store, options=FAST).connect()

    jump = SshConnection(BASTION, bastion.port, "root", key, host_keys=store, options=FAST)
    with SshConnection(
        TARGET, target.port, "root", key, host_keys=store, options=FAST, via=jump
    ) as conn:
        assert conn.run(["echo", "through"]).stdout == "through\n"
        assert conn.put_file(str(tmp_path / "f.txt"), b"data\n", 0o640) is True
        assert conn.route == f"root@{TARGET}:{target.port} via root@{BASTION}:{bastion.port}"
    assert (tmp_path / "f.txt").read_bytes() == b"data\n"
    # each hop pinned on its own; the target under the bastion's name
    assert store.get(BASTION, bastion.port) == ("ssh-ed25519", bastion.host_key_b64)
    pin = f"{BASTION}:{bastion.port}/{TARGET}"
    assert store.get(pin, target.port) == ("ssh-ed25519", target.host_key_b64)
    assert store.get(TARGET, target.port) is None


def test_the_same_address_behind_two_bastions_is_two_pins(keys):
    store = MemoryHostKeyStore()
    key = keys["admin"][0]

    def behind(bastion: str) -> SshConnection:
        jump = SshConnection(bastion, 22, "root", key, host_keys=store)
        return SshConnection("10.0.0.5", 22, "root", key, host_keys=store, via=jump)

    assert behind("198.51.100.1").pin_host == "198.51.100.1:22/10.0.0.5"
    assert behind("198.51.100.2").pin_host == "198.51.100.2:22/10.0.0.5"


def test_a_changed_bastion_key_stops_the_connection_before_the_target(net, keys):
    target, bastion = net
    store = MemoryHostKeyStore()
    key = keys["admin"][0]

    def conn() -> SshConnection:
        jump = SshConnection(BASTION, bastion.port, "root", key, host_keys=store, options=FAST)
        return SshConnection(
            TARGET, target.port, "root", key, host_keys=store, options=FAST, via=jump
        )

    with conn() as c:
        c.run("true")
    before = target.log_text().count("Accepted publickey")
    bastion.new_host_key()
    with pytest.raises(HostKeyChanged) as err:
        conn().connect()
    assert err.value.host == BASTION and err.value.new_fingerprint == bastion.fingerprint
    assert "jump host for" in str(err.value)
    assert target.log_text().count("Accepted publickey") == before  # never reached


# -- the CLI through a jump Server --------------------------------------------------------------
def _server(
    name: str, static: str, *, via: str | None = None, mail: str = "{stack: none}", host: str = ""
) -> str:
    return (
        "apiVersion: penguinctl/v1\nkind: Server\n"
        f"metadata: {{name: {name}, tenant: acme}}\n"
        f"spec:\n  provider: static\n  static: {{{static}}}\n"
        f"  hostname: {host or name + '.acme-mail.example'}\n  mail: {mail}\n"
        + (f"  ssh: {{via: {via}}}\n" if via else "")
    )


TENANT = "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: acme}\n"


def _keystore():
    from penguinctl.providers.secrets.keystore import KeystoreBackend
    from penguinctl.settings import load_settings

    s = load_settings()
    return KeystoreBackend(s.keystore_dir, key_file=s.master_key_file, master_key=s.master_key)


def _pins(state_url: str) -> dict[tuple[str, int], str]:
    from sqlmodel import Session, select

    from penguinctl.state.db import make_engine
    from penguinctl.state.models import HostKeyRow

    engine = make_engine(state_url)
    try:
        with Session(engine) as session:
            return {(r.host, r.port): r.key_b64 for r in session.exec(select(HostKeyRow))}
    finally:
        engine.dispose()


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, state_url, net, keys):
    target, bastion = net
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "---\n".join(
            [
                TENANT,
                _server("bastion", f"address: {BASTION}, ssh_port: {bastion.port}"),
                _server("mx1", f"address: {TARGET}, ssh_port: {target.port}", via="bastion"),
            ]
        )
    )

    def run(*args):
        return run_inprocess(capsys, *args)

    assert run("apply", "-f", spec, "--yes").code == 0
    for name in ("bastion", "mx1"):
        _keystore().put(f"tenants/acme/servers/{name}/ssh", {"private_key": keys["admin"][0]})
    return run


def test_exec_playbook_and_ssh_go_through_the_jump_server(cli, net, tmp_path, state_url):
    target, bastion = net
    res = cli(
        "server", "exec", "echo from $(hostname -I 2>/dev/null || echo x)", "mx1", "-o", "json"
    )
    assert res.code == 0, res.err
    assert res.json()["output"]["mx1"].startswith("from")

    base = f"--var=base={tmp_path / 'srv'}"
    first = cli("server", "playbook", "example", "mx1", base, "-o", "json")
    assert first.code == 0, first.err
    assert [s["status"] for s in first.json()["hosts"][0]["steps"]] == ["changed"] * 5
    assert (tmp_path / "srv" / "mx1" / "app.conf").read_text().startswith("# example config")
    again = cli("server", "playbook", "example", "mx1", base, "-o", "json")
    assert again.code == 0 and again.json()["counts"]["ok"] == 1, again.err

    pins = _pins(state_url)
    assert pins[(BASTION, bastion.port)] == bastion.host_key_b64
    assert pins[(f"{BASTION}:{bastion.port}/{TARGET}", target.port)] == target.host_key_b64

    env = {"PENGUINCTL_HOME": str(tmp_path / "home"), "PENGUINCTL_STATE": state_url}
    shell = run_subprocess(env, "server", "ssh", "mx1", "--", "echo", "hello", "$((6*7))")
    assert shell.code == 0, shell.err
    assert shell.out == "hello 42\n"  # the system ssh client, ProxyJump through the bastion


def test_ssh_pins_both_hops_on_first_contact(cli, net, tmp_path, state_url):
    target, bastion = net
    env = {"PENGUINCTL_HOME": str(tmp_path / "home"), "PENGUINCTL_STATE": state_url}
    res = run_subprocess(env, "server", "ssh", "mx1", "--", "true")
    assert res.code == 0, res.err
    assert f"pinned the host key of mx1 ({BASTION}:{bastion.port}/{TARGET}:{target.port})" in (
        res.err
    )
    assert f"pinned the host key of bastion ({BASTION}:{bastion.port})" in res.err
    assert target.fingerprint in res.err and bastion.fingerprint in res.err


def test_a_changed_bastion_host_key_is_refused_until_trusted(cli, net, tmp_path, state_url):
    _, bastion = net
    assert cli("server", "exec", "true", "mx1").code == 0  # pins both hops
    old = bastion.fingerprint
    bastion.stop()
    bastion.new_host_key()
    bastion.start()
    marker = tmp_path / "ran"
    res = cli("server", "exec", f"touch {marker}", "mx1")
    assert res.code == 5, res.err
    assert f"host key of {BASTION}:{bastion.port} changed" in res.err
    assert old in res.err and bastion.fingerprint in res.err
    assert "penguinctl server trust-hostkey bastion" in res.err
    assert not marker.exists()

    env = {"PENGUINCTL_HOME": str(tmp_path / "home"), "PENGUINCTL_STATE": state_url}
    shell = run_subprocess(env, "server", "ssh", "mx1", "--", "touch", str(marker))
    assert shell.code == 255 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in shell.err
    assert not marker.exists()

    trusted = cli("server", "trust-hostkey", "bastion", "-o", "json")
    assert trusted.code == 0 and trusted.json()["forgotten"] is True
    assert cli("server", "exec", f"touch {marker}", "mx1").code == 0
    assert marker.exists()


# -- apply: admin key bootstrap and MailU through the bastion ----------------------------------
def test_apply_bootstraps_both_admin_keys_and_installs_mailu_through_the_bastion(
    tmp_path, monkeypatch, capsys, state_url
):
    from fakes.mailu import FakeMailu
    from hostshims import install_shims

    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    _, initial_pub = keygen(tmp_path / "initial")
    shims = install_shims(tmp_path / "bin")
    target = HiddenSshServer(
        tmp_path / "target",
        TARGET,
        authorized_keys=[initial_pub],
        path_prefix=shims.directory,
        home=tmp_path / "target-home",
    )
    token = "test-api-token-0123456789abcdef"
    domain = "acme-mail.example"
    with target, FakeMailu(api_token=token, hostname=f"mail.{domain}") as mailu:
        from urllib.parse import urlsplit

        api = urlsplit(mailu.url)
        target.expose(api.hostname, api.port)  # the install waits for the API from the server
        bastion = BastionSshServer(
            tmp_path / "bastion",
            BASTION,
            authorized_keys=[initial_pub],
            inner=target,
            home=tmp_path / "bastion-home",
        )
        with bastion:
            initial = f'initial_key: "file:{tmp_path / "initial"}"'
            mail = f'{{stack: mailu, api_url: "{mailu.url}", root: {tmp_path / "mailu"}}}'
            spec = tmp_path / "spec.yaml"
            spec.write_text(
                "---\n".join(
                    [
                        TENANT,
                        _server(
                            "bastion", f"address: {BASTION}, ssh_port: {bastion.port}, {initial}"
                        ),
                        _server(
                            "mx1",
                            f"address: {TARGET}, ssh_port: {target.port}, {initial}",
                            via="bastion",
                            mail=mail,
                            host=f"mail.{domain}",
                        ),
                        "apiVersion: penguinctl/v1\nkind: DnsProvider\nmetadata: {name: zones}\n"
                        f"spec: {{type: zonefile, directory: {tmp_path / 'zones'}}}\n",
                        "apiVersion: penguinctl/v1\nkind: Domain\n"
                        f"metadata: {{name: {domain}, tenant: acme}}\n"
                        "spec:\n  server: mx1\n  dns: zones\n  mailboxes:\n"
                        "    - {local: john, daily_limit: 40}\n",
                    ]
                )
            )
            _keystore().put("tenants/acme/servers/mx1/mailu", {"api_token": token})
            run = lambda *a: run_inprocess(capsys, *a)  # noqa: E731
            res = run("apply", "-f", spec, "--yes")
            assert res.code == 0, res.out + res.err

            ks = _keystore()
            for name, home in (("bastion", "bastion-home"), ("mx1", "target-home")):
                admin = ks.get(f"tenants/acme/servers/{name}/ssh")
                assert admin is not None, name
                installed = (tmp_path / home / ".ssh" / "authorized_keys").read_text()
                assert admin["public_key"].reveal() in installed, name
            assert any(" up -d" in c for c in shims.calls())  # MailU started on the target
            assert (tmp_path / "mailu" / "docker-compose.yml").exists()

            shims.clear()
            again = run("-o", "json", "apply", "-f", spec, "--yes")
            assert again.code == 0, again.err
            assert not any(" up -d" in c for c in shims.calls())


# -- a jump host from the operator's ~/.ssh/config ----------------------------------------------
@pytest.fixture
def corp(tmp_path, keys):
    """The bastion as the operator's corporate jump host: it admits only `nobody`, with the
    operator's key (penguinctl holds no key for it)."""
    # sshd reads a user's keys as that user: nobody cannot enter pytest's 0700 directories
    public = Path(tempfile.mkdtemp(prefix="penguinctl-test-keys-"))
    public.chmod(0o755)
    (public / "authorized_keys").write_text(keys["operator"][1] + "\n")
    (public / "authorized_keys").chmod(0o644)
    target = HiddenSshServer(tmp_path / "target", TARGET, authorized_keys=[keys["admin"][1]])
    try:
        with target:
            bastion = BastionSshServer(
                tmp_path / "bastion",
                BASTION,
                authorized_keys=[],
                inner=target,
                extra_config=[
                    "AllowUsers nobody",
                    "Match User nobody",
                    f"  AuthorizedKeysFile {public / 'authorized_keys'}",
                ],
            )
            with bastion:
                yield target, bastion
    finally:
        shutil.rmtree(public, ignore_errors=True)


def test_a_jump_host_from_the_operators_ssh_config(
    corp, keys, tmp_path, monkeypatch, capsys, state_url
):
    target, bastion = corp
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host corp-jump\n"
        f"  HostName {BASTION}\n  Port {bastion.port}\n  User nobody\n"
        f"  IdentityFile {tmp_path / 'keys-operator'}\n  IdentitiesOnly yes\n"
        "Host mx-internal\n"
        f"  HostName {TARGET}\n  Port {target.port}\n  User root\n  ProxyJump corp-jump\n"
    )
    (tmp_path / "keys-operator").write_text(keys["operator"][0])
    (tmp_path / "keys-operator").chmod(0o600)
    env = {
        "PENGUINCTL_HOME": str(tmp_path / "home"),
        "PENGUINCTL_STATE": state_url,
        "PENGUINCTL_SSH_CONFIG": str(config),
        "SSH_AUTH_SOCK": "",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "---\n".join(
            [
                TENANT,
                # the jump host as a host string naming the config's alias
                _server(
                    "mx1", f"address: {TARGET}, ssh_port: {target.port}", via="ssh://corp-jump"
                ),
                # the server itself as an alias whose ProxyJump names the jump host
                _server("mx2", "address: mx-internal"),
            ]
        )
    )
    run = lambda *a: run_inprocess(capsys, *a)  # noqa: E731
    assert run("apply", "-f", spec, "--yes").code == 0
    for name in ("mx1", "mx2"):
        _keystore().put(f"tenants/acme/servers/{name}/ssh", {"private_key": keys["admin"][0]})

    res = run("server", "exec", "echo ok", "mx1", "mx2", "-o", "json")
    assert res.code == 0, res.err
    assert res.json()["output"] == {"mx1": "ok\n", "mx2": "ok\n"}
    assert "Accepted publickey for nobody" in bastion.log_text()  # User and IdentityFile
    pins = _pins(state_url)
    assert pins[(BASTION, bastion.port)] == bastion.host_key_b64
    assert pins[(f"{BASTION}:{bastion.port}/{TARGET}", target.port)] == target.host_key_b64

    shell = run_subprocess(env, "server", "ssh", "mx2", "--", "echo", "hello")
    assert shell.code == 0, shell.err
    assert shell.out == "hello\n"

    bastion.new_host_key()
    refused = run("server", "exec", "true", "mx1")
    assert refused.code == 5
    jump = f"{BASTION}:{bastion.port}"
    assert f"penguinctl server trust-hostkey mx1 --jump {jump}" in refused.err
    assert run("server", "trust-hostkey", "mx1", "--jump", "127.0.0.9:22").code == 2
    assert run("server", "trust-hostkey", "mx1", "--jump", jump).code == 0
    assert run("server", "exec", "true", "mx1", "mx2").code == 0
