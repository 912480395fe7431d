"""Backups off the protected server: an SFTP repository on a backup host (a second real sshd,
its internal SFTP server) reached by the server's restic with a key penguinctl holds
(ssh-agent, never a file on the server) and a pinned host key; a repository on the server
itself is warned about at plan and fails `check`."""

from __future__ import annotations

import pytest
from clitools import run_inprocess
from daemons import need_binary
from sshd import SshServer, keygen
from test_backup import DOCKER_SHIM, make_mailu_tree, tree_digest

pytestmark = pytest.mark.clock


def _policy_spec(path, srv, repository: str) -> None:
    path.write_text(
        "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: acme}\n---\n"
        "apiVersion: penguinctl/v1\nkind: Server\nmetadata: {name: mx1, tenant: acme}\n"
        "spec:\n  provider: static\n"
        f"  static: {{address: {srv.address}, ssh_user: root, ssh_port: {srv.port}}}\n"
        "  hostname: mx1.acme-mail.example\n  mail: {stack: none}\n  backup: nightly\n---\n"
        "apiVersion: penguinctl/v1\nkind: BackupPolicy\nmetadata: {name: nightly, tenant: acme}\n"
        f"spec:\n  schedule: '30 2 * * *'\n  retention: {{daily: 3}}\n"
        f"  repository: '{repository}'\n"
    )


@pytest.fixture
def hosts(tmp_path):
    need_binary("restic", "restic")
    priv, pub = keygen(tmp_path / "id_admin")
    sftp_priv, sftp_pub = keygen(tmp_path / "id_sftp")
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "docker").write_text(DOCKER_SHIM)
    (shim / "docker").chmod(0o755)
    server = SshServer(tmp_path / "sshd-mx1", "127.0.0.7", authorized_keys=[pub], path_prefix=shim)
    backup = SshServer(tmp_path / "sshd-backup", "127.0.0.8", authorized_keys=[sftp_pub])
    with server, backup:
        yield server, backup, priv, sftp_priv


def test_sftp_repository_on_a_backup_host(tmp_path, monkeypatch, capsys, hosts):
    server, backup, priv, sftp_priv = hosts

    def cli(*args):
        return run_inprocess(capsys, *args)

    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    root = tmp_path / "mailu"
    make_mailu_tree(root)
    offsite = tmp_path / "backup-host" / "restic"
    repo = f"sftp://root@{backup.address}:{backup.port}/{offsite}/{{server}}"
    spec = tmp_path / "spec.yaml"
    _policy_spec(spec, server, repo)
    from fakes.state_rows import record_resources, static_server

    record_resources(
        f"sqlite:///{tmp_path / 'state.db'}",
        [("server", "acme", "mx1", static_server(server.address, server.port, "mx1.a.example"))],
    )
    from penguinctl.providers.secrets.keystore import KeystoreBackend
    from penguinctl.settings import load_settings

    s = load_settings()
    ks = KeystoreBackend(s.keystore_dir, key_file=s.master_key_file)
    ks.put("tenants/acme/servers/mx1/ssh", {"private_key": priv})
    known = f"[{backup.address}]:{backup.port} {backup.host_key_public}"
    ks.put("tenants/acme/backups/mx1", {"sftp_private_key": sftp_priv, "sftp_known_hosts": known})

    plan = cli("plan", "-f", spec, "-o", "json")
    assert plan.code == 0, plan.err
    assert not [w for w in plan.json()["warnings"] if "off-server" in w], plan.out

    before = tree_digest(root)
    run = cli("backup", "run", "mx1", "-f", spec, "--mailu-root", root, "-o", "json")
    assert run.code == 0, run.err + run.out
    assert (offsite / "mx1" / "config").is_file()  # on the backup host, over SFTP
    assert ks.get("tenants/acme/backups/mx1")["password"].reveal()  # generated, SFTP fields kept
    assert ks.get("tenants/acme/backups/mx1")["sftp_private_key"].reveal() == sftp_priv
    snap = run.json()["servers"][0]["snapshot"]
    target = tmp_path / "restored"
    res = cli("backup", "restore", snap, "--server", "mx1", "-f", spec, "--to", target)
    assert res.code == 0, res.err
    assert tree_digest(target / str(root).lstrip("/")) == before
    ok = cli("backup", "verify", "mx1", "-f", spec, "--read-data-subset", "100%")
    assert ok.code == 0, ok.err + ok.out
    import glob

    assert not glob.glob("/tmp/penguinctl-sftp-*")  # agent and wrapper cleaned up

    # a changed host key on the backup host: refused (pinned), not trusted on first use
    backup.stop()
    backup.new_host_key()
    backup.start()
    bad = cli("backup", "run", "mx1", "-f", spec, "--mailu-root", root)
    assert bad.code != 0 and (
        "does not match the pinned one" in bad.err or "no SFTP session" in bad.err
    ), bad.err

    # a repository on the server itself: plan warns, check fails
    _policy_spec(spec, server, str(tmp_path / "repos" / "{server}"))
    plan = cli("plan", "-f", spec, "-o", "json")
    assert any("server/mx1: backups are not off-server" in w for w in plan.json()["warnings"])
    checked = cli("check", "mx1", "-f", spec, "--skip", "dns", "--skip", "dnsbl", "--skip",
                  "fcrdns", "--skip", "tls", "--skip", "remote", "-o", "json")  # fmt: skip
    assert checked.code != 0
