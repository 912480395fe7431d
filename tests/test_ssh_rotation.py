"""Admin SSH key rotation against a real sshd whose ~/.ssh/authorized_keys penguinctl edits: after
a rotation the new key logs in; once the overlap is over the old key no longer does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from clitools import run_inprocess
from secrets_backends import secrets_backend  # noqa: F401 - keystore and Vault
from sshd import SshServer, keygen

pytestmark = pytest.mark.clock  # date-sensitive: scripts/test re-runs it under shifted clocks

ADDRESS = "127.0.0.22"


@pytest.fixture
def setup(tmp_path, monkeypatch, capsys, state_url, secrets_backend):  # noqa: F811
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    private, public = keygen(tmp_path / "admin0")
    home = tmp_path / "root-home"
    with SshServer(tmp_path / "sshd", ADDRESS, authorized_keys=[public], home=home) as server:
        spec = tmp_path / "spec.yaml"
        spec.write_text(
            "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: acme}\n---\n"
            "apiVersion: penguinctl/v1\nkind: Server\nmetadata: {name: mx1, tenant: acme}\n"
            "spec:\n  provider: static\n"
            f"  static: {{address: {ADDRESS}, ssh_port: {server.port}}}\n"
            "  hostname: mail.acme-mail.example\n  mail: {stack: none}\n"
        )
        run = lambda *a: run_inprocess(capsys, *a)  # noqa: E731
        assert run("apply", "-f", spec, "--yes").code == 0
        ks = secrets_backend.backend()
        ks.put("tenants/acme/servers/mx1/ssh", {"private_key": private, "public_key": public})
        yield {
            "run": run,
            "server": server,
            "ks": ks,
            "old": private,
            "home": home,
            "url": state_url,
        }


def _logs_in(server, key: str) -> bool:
    from penguinctl.remote.errors import SshAuthFailed
    from penguinctl.remote.hostkeys import MemoryHostKeyStore
    from penguinctl.remote.ssh import SshConnection, SshOptions

    conn = SshConnection(
        server.address, server.port, "root", key,
        host_keys=MemoryHostKeyStore(), options=SshOptions(retries=0),
    )  # fmt: skip
    try:
        with conn:
            return conn.run(["true"]).ok
    except SshAuthFailed:
        return False


def test_rotation_keeps_the_old_key_for_the_overlap_then_removes_it(setup):
    from penguinctl.secret_rotation.base import RotationContext
    from penguinctl.secret_rotation.ssh import SshKeyRotation
    from penguinctl.state.db import make_engine

    engine = make_engine(setup["url"])
    clock = [datetime.now(UTC)]
    ctx = RotationContext(engine, setup["ks"], "tester", {}, now=lambda: clock[0])
    rotation = SshKeyRotation(ctx)
    (item,) = rotation.candidates()
    assert item.target == "mx1" and not item.is_due(clock[0])  # stored just now

    summary = rotation.rotate(item)  # named explicitly: rotates now
    assert "installed" in summary
    new = setup["ks"].get("tenants/acme/servers/mx1/ssh")["private_key"].reveal()
    assert new != setup["old"]
    assert _logs_in(setup["server"], new) and _logs_in(setup["server"], setup["old"])

    clock[0] += timedelta(hours=1)  # still within the 24 h overlap
    (item,) = rotation.candidates()
    assert not item.is_due(clock[0])
    assert "still accepted" in rotation.rotate(item)
    assert _logs_in(setup["server"], setup["old"])

    clock[0] += timedelta(hours=24)
    (item,) = rotation.candidates()
    assert item.is_due(clock[0])
    assert "removed" in rotation.rotate(item)
    assert _logs_in(setup["server"], new)
    assert not _logs_in(setup["server"], setup["old"])
    lines = (setup["home"] / ".ssh" / "authorized_keys").read_text().splitlines()
    assert lines == [setup["ks"].get("tenants/acme/servers/mx1/ssh")["public_key"].reveal()]
    fields = setup["ks"].get("tenants/acme/servers/mx1/ssh")
    assert "previous_private_key" not in fields and "rotated_at" in fields
    (item,) = rotation.candidates()
    assert not item.is_due(clock[0])  # next rotation in 90 days
    assert item.due_at is not None and item.due_at - clock[0] > timedelta(days=88)  # 90 d after
    engine.dispose()


def test_secrets_rotate_cli_without_overlap(setup, monkeypatch):
    monkeypatch.setenv("PENGUINCTL_SSH_KEY_OVERLAP", "0")
    res = setup["run"]("secrets", "rotate", "mx1", "--kind", "ssh")
    assert res.code == 0, res.out + res.err
    new = setup["ks"].get("tenants/acme/servers/mx1/ssh")["private_key"].reveal()
    assert _logs_in(setup["server"], new)
    assert not _logs_in(setup["server"], setup["old"])
    audit = setup["run"]("-o", "json", "state", "audit")
    actions = {e["action"] for e in audit.json()}
    assert {
        "secret.rotate.ssh.install",
        "secret.rotate.ssh.promote",
        "secret.rotate.ssh.retire",
    } <= actions
    assert new not in audit.out and setup["old"] not in audit.out
