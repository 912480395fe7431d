"""`backup run / list / restore / prune / verify` end to end: real restic on a host reached over
real sshd (127.0.0.x), a MailU-shaped tree, a recording `docker` shim on the session PATH.
Restores are compared byte for byte; a corrupted pack file makes `verify` fail."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from clitools import run_inprocess
from daemons import need_binary
from sshd import SshServer, keygen

pytestmark = pytest.mark.clock  # date-sensitive: scripts/test re-runs it under shifted clocks

DOCKER_SHIM = """#!/bin/sh
# records every call; `compose ps` answers from ps.json next to this script
d=$(dirname "$0")
printf '%s\\n' "$*" >> "$d/docker.log"
case "$*" in *" ps "*|*" ps") [ -f "$d/ps.json" ] && cat "$d/ps.json";; esac
exit 0
"""


def make_mailu_tree(root: Path) -> None:
    rnd = __import__("random").Random(8)
    files = {
        "data/main.db": rnd.randbytes(200_000),
        "data/instance": b"b5f1c0de\n",
        "dkim/acme-mail.example.dkim.key": b"-----BEGIN PRIVATE KEY-----\nabc\n",
        "dkim-sign/acme-mail.example.pm202611.key": b"key material\n",
        "mail/john@acme-mail.example/cur/1700000000.M1P1.mx1:2,S": b"Subject: hi\r\n\r\nbody\r\n",
        "mail/john@acme-mail.example/new/big attachment": rnd.randbytes(1_500_000),
        "mailqueue/deferred/A/ABC123": rnd.randbytes(4096),
        "certs/cert.pem": b"-----BEGIN CERTIFICATE-----\n",
        "overrides/rspamd/dkim_signing.conf": b".priority 2\nuse_vault = false;\n",
        "filter/bayes.spam.sqlite": rnd.randbytes(65_536),
        "redis/dump.rdb": rnd.randbytes(10_000),
        "docker-compose.yml": b"services: {}\n",
        "mailu.env": b"SECRET_KEY=notreal\n",
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (root / "mail" / "empty-box" / "tmp").mkdir(parents=True)
    os.chmod(root / "mailu.env", 0o600)


def tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under root: relative path -> (sha256, mode); directories as ('dir', mode)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = ("dir", stat.S_IMODE(p.stat().st_mode))
        for name in filenames:
            p = Path(dirpath) / name
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
            out[str(p.relative_to(root))] = (digest, stat.S_IMODE(p.stat().st_mode))
    return out


@pytest.fixture
def host(tmp_path):
    need_binary("restic", "restic")
    priv, pub = keygen(tmp_path / "id_ed25519")
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    (shim_dir / "docker").write_text(DOCKER_SHIM)
    (shim_dir / "docker").chmod(0o755)
    srv = SshServer(tmp_path / "sshd", "127.0.0.7", authorized_keys=[pub], path_prefix=shim_dir)
    with srv:
        yield srv, priv, shim_dir


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, host):
    srv, priv, _ = host
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    root = tmp_path / "mailu"
    make_mailu_tree(root)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: acme}\n---\n"
        "apiVersion: penguinctl/v1\nkind: Server\nmetadata: {name: mx1, tenant: acme}\n"
        "spec:\n  provider: static\n"
        f"  static: {{address: {srv.address}, ssh_user: root, ssh_port: {srv.port}}}\n"
        "  hostname: mx1.acme-mail.example\n  backup: nightly\n---\n"
        "apiVersion: penguinctl/v1\nkind: BackupPolicy\nmetadata: {name: nightly, tenant: acme}\n"
        "spec:\n  schedule: '30 2 * * *'\n  retention: {daily: 1, weekly: 0, monthly: 0}\n"
        f"  repository: {tmp_path / 'repos' / '{server}'}\n"
    )

    def run(*args):
        return run_inprocess(capsys, *args)

    from fakes.state_rows import record_resources, static_server

    server = static_server(srv.address, srv.port, "mx1.acme-mail.example")
    record_resources(f"sqlite:///{tmp_path / 'state.db'}", [("server", "acme", "mx1", server)])
    from penguinctl.providers.secrets.keystore import KeystoreBackend
    from penguinctl.settings import load_settings

    s = load_settings()
    ks = KeystoreBackend(s.keystore_dir, key_file=s.master_key_file, master_key=s.master_key)
    ks.put("tenants/acme/servers/mx1/ssh", {"private_key": priv})
    run.spec = spec
    run.root = root
    run.repo = tmp_path / "repos" / "mx1"
    run.keystore = ks
    return run


def test_backup_restore_prune_verify(cli, host, tmp_path):
    _, _, shim_dir = host
    root, spec = cli.root, cli.spec
    before = tree_digest(root)

    first = cli("backup", "run", "mx1", "-f", spec, "--mailu-root", root, "-o", "json")
    assert first.code == 0, first.err + first.out
    item = first.json()["servers"][0]
    assert item["status"] == "ok" and item["repository_created"] is True
    assert item["files_new"] == len([v for v in before.values() if v[0] != "dir"])
    assert item["samples"] > 0
    snap1 = item["snapshot"]
    assert (cli.repo / "config").exists()  # the policy's repository, {server} filled in

    calls = (shim_dir / "docker.log").read_text().splitlines()
    assert [c.split(" mailu ", 1)[1] for c in calls] == [
        "exec -T redis redis-cli save",
        "pause",
        "unpause",
    ]

    password = cli.keystore.get("tenants/acme/backups/mx1")["password"].reveal()
    assert len(password) >= 32

    (root / "data" / "main.db").write_bytes(b"changed after the first snapshot")
    (root / "mail" / "john@acme-mail.example" / "cur" / "new-message").write_bytes(b"x" * 100)
    second = cli("backup", "run", "mx1", "-f", spec, "--mailu-root", root, "-o", "json")
    assert second.code == 0, second.err
    snap2 = second.json()["servers"][0]["snapshot"]
    assert second.json()["servers"][0]["repository_created"] is False

    listed = cli("backup", "list", "mx1", "-o", "json")
    assert listed.code == 0, listed.err
    assert {s["snapshot"] for s in listed.json()} == {snap1, snap2}

    # restore the first snapshot elsewhere and compare every byte (and mode)
    target = tmp_path / "restored"
    res = cli("backup", "restore", snap1[:10], "--server", "mx1", "--to", target, "-o", "json")
    assert res.code == 0, res.err
    restored_root = target / str(root).lstrip("/")
    assert tree_digest(restored_root) == before

    # verify: restic check reads all data, sample files restored and compared
    ok = cli("backup", "verify", "mx1", "--read-data-subset", "100%", "-o", "json")
    assert ok.code == 0, ok.err + ok.out
    v = ok.json()["servers"][0]
    assert v["check"] == "ok" and v["samples"] > 0 and v["samples_ok"] == v["samples"]
    assert v["snapshot"] == snap2

    # retention daily=1: the older snapshot of today goes
    pruned = cli("backup", "prune", "mx1", "-f", spec, "-o", "json")
    assert pruned.code == 0, pruned.err
    assert pruned.json()["servers"][0]["removed_ids"] == [snap1]
    recorded = cli("backup", "list", "--recorded", "-o", "json").json()
    assert [s["snapshot"] for s in recorded] == [snap2]
    got = cli("get", "backups", "-o", "json")
    assert got.code == 0 and [g["snapshot"] for g in got.json()] == [snap2[:8]]

    # corrupt every pack file: verify must fail with exit 5
    packs = [p for p in (cli.repo / "data").rglob("*") if p.is_file()]
    assert packs
    for p in packs:
        p.chmod(0o644)
        data = bytearray(p.read_bytes())
        mid = len(data) // 2
        data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
        p.write_bytes(bytes(data))
    bad = cli("backup", "verify", "mx1", "--read-data-subset", "100%", "-o", "json")
    assert bad.code == 5, bad.out + bad.err
    assert bad.json()["servers"][0]["status"] == "failed"

    # the restore drills as events: verified (with the snapshot), then failed
    from eventkit import validate

    drills = [validate(e) for e in reversed(cli("events", "list", "-o", "json").json())]
    assert [e["type"] for e in drills if e["subject"] == "server/mx1"] == [
        "backup.verified",
        "restore.drill.failed",
    ]
    assert drills[0]["data"]["snapshot"] == snap2 and drills[0]["data"]["samples"] > 0
    assert "mx1" in drills[1]["data"]["error"]

    # runs recorded and audited, the password nowhere in state or output
    audit = cli("state", "audit", "-o", "json")
    actions = [e["action"] for e in audit.json() if e["action"].startswith("backup.")]
    assert actions.count("backup.run") == 2 and "backup.verify" in actions
    assert "backup.restore" in actions and "backup.prune" in actions
    state_bytes = (tmp_path / "state.db").read_bytes()
    for text in (first.out, second.out, res.out, ok.out, bad.out, audit.out):
        assert password not in text
    assert password.encode() not in state_bytes


def test_restore_in_place_stops_and_starts_the_stack(cli, host):
    _, _, shim_dir = host
    root, spec = cli.root, cli.spec
    before = tree_digest(root)
    res = cli("backup", "run", "mx1", "-f", spec, "--mailu-root", root, "--no-quiesce")
    assert res.code == 0, res.err
    assert not (shim_dir / "docker.log").exists()  # --no-quiesce: the stack is left alone
    (root / "dkim" / "acme-mail.example.dkim.key").write_bytes(b"damaged")
    (root / "redis" / "dump.rdb").unlink()
    refused = cli("backup", "restore", "latest", "--server", "mx1", "-f", spec,
                  "--mailu-root", root, "-o", "json")  # fmt: skip
    assert refused.code == 2  # in place needs --yes
    done = cli("backup", "restore", "latest", "--server", "mx1", "-f", spec,
               "--mailu-root", root, "--yes")  # fmt: skip
    assert done.code == 0, done.err
    assert tree_digest(root) == before
    calls = (shim_dir / "docker.log").read_text().splitlines()
    assert [c.split(" mailu ", 1)[1] for c in calls] == ["stop", "start"]


def test_usage_errors(cli):
    assert cli("backup", "run").code == 2
    assert cli("backup", "run", "nope").code == 2
    missing = cli("backup", "verify", "mx1")
    # never backed up: no password
    assert missing.code == 5 and "tenants/acme/backups/mx1" in missing.err
