"""Admin key bootstrap on a Hostwinds server: the root password from the Hostwinds API (the fake)
is the initial access, through a password-accepting SSH server (tests/password_sshd.py); the
installed key is then accepted by a real OpenSSH sshd reading the same ``authorized_keys``.

Covers: the password fetched only when the admin key does not log in yet, never in a log
record, an audit event, an error message or the secrets backend; a wrong password fails with a
message that does not quote it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fakes.hostwinds import FakeHostwinds
from password_sshd import PasswordSshServer
from sshd import SshServer

ADDRESS = "127.0.0.33"
SSHD_ADDRESS = "127.0.0.34"
API_KEY = "hw-test-key-0123456789"
PASSWORD = "root-Pw-7f3a9c1e55b2"


def _keystore(tmp: Path):
    from penguinctl.providers.secrets.keystore import KeystoreBackend

    return KeystoreBackend(tmp / "keystore", key_file=tmp / "master.key")


@pytest.fixture
def hw(tmp_path, migrated_engine, caplog):
    caplog.set_level(logging.DEBUG)
    home = tmp_path / "root-home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "authorized_keys").write_text("")
    with (
        FakeHostwinds(api_key=API_KEY, build_polls=0) as fake,
        PasswordSshServer(ADDRESS, username="root", password=PASSWORD, home=home) as pw_server,
    ):
        sid = fake.create_instance("mx2", main_ip=ADDRESS, password=PASSWORD)
        yield {
            "fake": fake, "server": pw_server, "sid": sid, "home": home, "tmp": tmp_path,
            "engine": migrated_engine, "secrets": _keystore(tmp_path),
        }  # fmt: skip


def _provider(hw):
    from penguinctl.providers.mailstack import MailstackProvider
    from penguinctl.remote.hostkeys import StateHostKeyStore
    from penguinctl.state import audit
    from penguinctl.state.db import session_scope

    def record(action, resource, details):
        with session_scope(hw["engine"]) as session:
            audit.record(
                session, actor="test", tenant="", action=action, resource=resource,
                result="ok", details=details,
            )  # fmt: skip

    data = {
        "provider": "hostwinds",
        "service_id": hw["sid"],
        "main_ip": ADDRESS,
        "ssh_port": hw["server"].port,  # the test server's port; Hostwinds servers use 22
        "hostname": "mail.acme-mail.example",
    }
    env = {"HOSTWINDS_API_KEY": API_KEY, "HOSTWINDS_API_URL": hw["fake"].url}
    return MailstackProvider(
        "mailstack:mx2",
        server="mx2",
        server_data=data,
        secrets=hw["secrets"],
        host_keys=StateHostKeyStore(hw["engine"], actor="test"),
        env=env,
        audit=record,
    )


def _audit_text(engine) -> tuple[str, list[str]]:
    import sqlalchemy as sa

    from penguinctl.state.models import AuditEvent

    with engine.connect() as conn:
        rows = conn.execute(sa.select(AuditEvent.__table__)).mappings().all()
    return "\n".join(repr(dict(r)) for r in rows), [r["action"] for r in rows]


def _log_text(caplog) -> str:
    return "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records
    )


def test_bootstrap_through_the_root_password_then_only_the_key(hw, caplog):
    provider = _provider(hw)
    with provider.connect() as conn:
        assert conn.run(["id", "-u"], check=True).rc == 0
    server = hw["server"]
    # one password login to install the key, then key logins only
    assert server.logins.count("password") == 1
    assert server.logins[-1] == "publickey"
    assert hw["fake"].count("get_instance") == 1

    admin = hw["secrets"].get("platform/servers/mx2/ssh")
    assert admin is not None and "private_key" in admin
    public = admin["public_key"].reveal()
    lines = (hw["home"] / ".ssh" / "authorized_keys").read_text().splitlines()
    assert lines == [public]

    # a real OpenSSH sshd reading the same authorized_keys accepts the admin key
    from penguinctl.remote.hostkeys import MemoryHostKeyStore
    from penguinctl.remote.ssh import SshConnection

    real = SshServer(hw["tmp"] / "sshd", SSHD_ADDRESS, authorized_keys=[], home=hw["home"])
    with real:
        key = admin["private_key"]
        conn = SshConnection(SSHD_ADDRESS, real.port, "root", key, host_keys=MemoryHostKeyStore())
        with conn:
            res = conn.run(["sh", "-c", 'echo "$HOME"'], check=True)
            assert res.stdout.strip() == str(hw["home"])

    # the password is nowhere: logs, audit events, secrets backend
    assert PASSWORD not in _log_text(caplog)
    text, actions = _audit_text(hw["engine"])
    assert PASSWORD not in text
    assert "ssh.admin_key.generate" in actions and "ssh.admin_key.install" in actions
    stored = hw["secrets"].get("platform/servers/mx2/ssh")
    assert all(PASSWORD not in v.reveal() for v in stored.values())
    keystore_files = [p for p in (hw["tmp"] / "keystore").rglob("*") if p.is_file()]
    assert all(PASSWORD.encode() not in p.read_bytes() for p in keystore_files)


def test_a_working_admin_key_never_asks_hostwinds_for_the_password(hw):
    provider = _provider(hw)
    with provider.connect():
        pass
    assert hw["fake"].count("get_instance") == 1
    server = hw["server"]
    server.logins.clear()

    with provider.connect() as conn:
        conn.run(["true"], check=True)
    assert server.logins == ["publickey"]
    assert hw["fake"].count("get_instance") == 1  # not asked again


def test_a_wrong_root_password_fails_without_quoting_it(hw, caplog):
    from penguinctl.errors import PenguinError

    wrong = "root-Pw-wrong0000abcd"
    hw["fake"].set_state(hw["sid"], password=wrong)
    provider = _provider(hw)
    with pytest.raises(PenguinError) as info:
        provider.connect()
    err = info.value
    shown = f"{err} {getattr(err, 'hint', '')} {err!r}"
    assert "authentication failed" in shown
    assert wrong not in shown and PASSWORD not in shown
    assert wrong not in _log_text(caplog)
    assert hw["server"].failed_passwords >= 1 and "password" not in hw["server"].logins
    text, _ = _audit_text(hw["engine"])
    assert wrong not in text
    # the generated key stays stored: the next run installs it once the access works
    assert hw["secrets"].get("platform/servers/mx2/ssh") is not None
