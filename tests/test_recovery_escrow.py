"""Secrets escrow and `recover`: `backup state` seals every secret to the recovery key; on a
fresh PENGUINCTL_HOME (and, for Vault, a fresh Vault) `recover` brings state and secrets back,
`plan` shows no changes and every secret reads back with its value. On both secrets backends."""

from __future__ import annotations

import json
import tarfile

import pytest
from clitools import run_inprocess
from fakes.vault import FakeVault
from secrets_backends import MINIMAL_POLICY, TEST_TOKEN, secrets_backend  # noqa: F401

pytestmark = pytest.mark.clock


def _spec(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: acme}\n---\n"
        "apiVersion: penguinctl/v1\nkind: Server\nmetadata: {name: mx1, tenant: acme}\n"
        "spec: {provider: external, external: {ips: [203.0.113.7]}, "
        "hostname: mail.acme-mail.example}\n---\n"
        "apiVersion: penguinctl/v1\nkind: DnsProvider\nmetadata: {name: z, tenant: acme}\n"
        f"spec: {{type: zonefile, directory: {tmp_path / 'zones'}}}\n---\n"
        "apiVersion: penguinctl/v1\nkind: Domain\nmetadata: {name: acme-mail.example, "
        "tenant: acme}\nspec:\n  server: mx1\n  dns: z\n"
        "  mailboxes:\n    - {local: john, display_name: John, daily_limit: 40}\n"
    )
    return spec


def _values(backend) -> dict[str, dict[str, str]]:
    return {p: {k: v.reveal() for k, v in backend.get(p).items()} for p in backend.list("")}


def test_backup_state_escrows_secrets_and_recover_restores_them(
    tmp_path,
    monkeypatch,
    capsys,
    secrets_backend,  # noqa: F811
):
    def cli(*args):
        return run_inprocess(capsys, *args)

    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PENGUINCTL_STATE", raising=False)
    init = cli("init")
    assert init.code == 0 and "recovery-key create" in init.out  # init says how
    spec = _spec(tmp_path)
    assert cli("apply", "-f", spec, "--yes").code == 0
    fields = tmp_path / "fields.env"
    fields.write_text("password=restic-repo-password-1\n")
    assert cli("secrets", "put", "tenants/acme/backups/mx1", "-f", fields).code == 0

    # without a recovery key: the state is backed up, the secrets are not (said so)
    bare = cli("backup", "state", "-o", "json")
    assert bare.code == 0, bare.err
    assert (
        bare.json()["secrets"]["file"] is None
        and "recovery-key" in bare.json()["secrets"]["warning"]
    )

    key = tmp_path / "offline" / "recovery-key.txt"
    key.parent.mkdir()
    made = cli("recovery-key", "create", "--out", key, "-o", "json")
    assert made.code == 0, made.err
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert "private_key" not in made.json()
    again = cli("recovery-key", "create", "--out", tmp_path / "other.txt")
    assert again.code == 4  # never replaced silently
    before = _values(secrets_backend.backend())
    assert any(p.endswith("dkim/" + p.rsplit("/", 1)[-1]) for p in before)

    job = cli("jobs", "run", "backup-state", "-o", "json")  # serve's scheduled job, the same
    assert job.code == 0, job.err + job.out
    assert '"secrets"' in job.out and ".escrow" in job.out, job.out

    res = cli("backup", "state", "--to", tmp_path / "offsite" / "state.db", "-o", "json")
    assert res.code == 0, res.err
    sec = res.json()["secrets"]
    escrow_file = tmp_path / "offsite" / "state.escrow"
    assert sec["file"] == str(escrow_file) and sec["count"] == len(before)
    # nothing in the escrow is readable without the key
    raw = escrow_file.read_bytes()
    for path, fields in before.items():
        for name, value in fields.items():
            if name != "recipient":  # the recovery key's public half
                assert value.encode() not in raw, path
    with tarfile.open(escrow_file) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest["state_sha256"] == res.json()["sha256"]

    # the machine is lost: a fresh home (and a fresh, empty Vault)
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "new-home"))
    fresh = None
    if secrets_backend.name == "vault":
        fresh = FakeVault()
        fresh.__enter__()
        fresh.add_token(TEST_TOKEN, MINIMAL_POLICY)
        monkeypatch.setenv("VAULT_ADDR", fresh.url)
    try:
        wrong = tmp_path / "wrong.txt"
        from pyrage import x25519

        wrong.write_text(str(x25519.Identity.generate()) + "\n")
        bad = cli("recover", "--state", tmp_path / "offsite" / "state.db",
                  "--secrets", escrow_file, "--recovery-key", wrong)  # fmt: skip
        assert bad.code != 0 and "recovery key does not open" in bad.err
        assert secrets_backend.backend().list("") == []  # nothing written

        rec = cli("recover", "--state", tmp_path / "offsite" / "state.db",
                  "--secrets", escrow_file, "--recovery-key", key, "-o", "json")  # fmt: skip
        assert rec.code == 0, rec.err + rec.out
        assert rec.json()["secrets"] == len(before) and rec.json()["resources"] > 0
        assert _values(secrets_backend.backend()) == before
        plan = cli("plan", "-f", spec, "--detailed-exitcode")
        assert plan.code == 0, plan.out + plan.err
        # twice: refused, the backend is not empty any more
        twice = cli("recover", "--state", tmp_path / "offsite" / "state.db",
                    "--secrets", escrow_file, "--recovery-key", key)  # fmt: skip
        assert twice.code == 4
        audit = cli("state", "audit", "-o", "json")
        assert "recovery.recover" in audit.out
    finally:
        if fresh is not None:
            fresh.__exit__(None, None, None)


def test_passphrase_recovery_key(tmp_path, monkeypatch, capsys):
    def cli(*args):
        return run_inprocess(capsys, *args)

    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PENGUINCTL_STATE", raising=False)
    monkeypatch.setenv("PENGUINCTL_SECRETS", "keystore")
    monkeypatch.setenv("PENGUINCTL_RECOVERY_PASSPHRASE", "correct horse battery staple")
    assert cli("init").code == 0
    assert cli("recovery-key", "create", "--passphrase", "--yes").code == 0
    fields = tmp_path / "fields.env"
    fields.write_text("api_key=hw-key-123456\n")
    assert cli("secrets", "put", "platform/providers/hostwinds", "-f", fields).code == 0
    res = cli("backup", "state", "-o", "json")
    assert res.code == 0, res.err
    state_file, escrow_file = res.json()["file"], res.json()["secrets"]["file"]
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "fresh"))
    monkeypatch.setenv("PENGUINCTL_RECOVERY_PASSPHRASE", "wrong passphrase here")
    bad = cli("recover", "--state", state_file, "--secrets", escrow_file, "--passphrase", "--yes")
    assert bad.code != 0 and "passphrase does not open" in bad.err
    monkeypatch.setenv("PENGUINCTL_RECOVERY_PASSPHRASE", "correct horse battery staple")
    ok = cli("recover", "--state", state_file, "--secrets", escrow_file, "--passphrase", "--yes")
    assert ok.code == 0, ok.err
    got = cli("secrets", "get", "platform/providers/hostwinds", "--reveal", "-o", "json")
    assert "hw-key-123456" in got.out
