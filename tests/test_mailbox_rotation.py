"""Mailbox password rotation (``secrets rotate --kind mailbox``) against the local double of
MailU's API: due after 180 days, the new password logs in and the old one no longer does, a
crash at any step converges on the next run, every step audited without a value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fakes.mailu import FakeMailu

from penguinctl.errors import LockHeld, ProviderError
from penguinctl.resources import ResourceKey
from penguinctl.secret_rotation import registry
from penguinctl.secret_rotation.base import RotationContext
from penguinctl.secret_rotation.mailbox import MailboxPasswordRotation

pytestmark = pytest.mark.clock  # date-sensitive: scripts/test re-runs it under shifted clocks

TOKEN = "mailu-rotation-token-0b9c8d7e6f5a4b3c2d1e"
DOMAIN = "acme-mail.example"
START = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def fake():
    with FakeMailu(api_token=TOKEN) as server:
        server.add_domain(DOMAIN)
        yield server


@pytest.fixture
def keystore(tmp_path):
    from penguinctl.providers.secrets.keystore import KeystoreBackend

    return KeystoreBackend(tmp_path / "ks", key_file=tmp_path / "master.key")


@pytest.fixture
def clock():
    return Clock(START)


@pytest.fixture
def ctx(migrated_engine, keystore, fake, clock):
    """State as `apply` leaves it: the server, two generated mailboxes, one with a spec
    reference; their users in MailU; passwords in the secrets backend."""
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    keystore.put("tenants/acme/servers/mx1/mailu", {"api_token": TOKEN})
    with session_scope(migrated_engine) as s:
        repo.upsert_resource(
            s,
            key=ResourceKey("server", "acme", "mx1"),
            provider="server:static",
            data={
                "provider": "static",
                "hostname": f"mail.{DOMAIN}",
                "mail": {"api_url": fake.url},
            },
        )
        for local, ref in (("john", None), ("sara", None), ("ext", "env:EXT_PASSWORD")):
            address = f"{local}@{DOMAIN}"
            data = {"domain": DOMAIN, "display_name": None, "daily_limit": 40, "password": ref}
            repo.upsert_resource(
                s, key=ResourceKey("mailbox", "acme", address), provider="mail:mx1", data=data
            )
            fake.add_user(address, f"old-{local}")
            if ref is None:
                keystore.put(
                    f"tenants/acme/mailboxes/{address}",
                    {"password": f"old-{local}", "rotated_at": START.isoformat()},
                )
    return RotationContext(
        engine=migrated_engine, secrets=keystore, actor="tester", env={}, now=clock
    )


def _audit(engine, resource: str) -> list[tuple[str, str]]:
    from sqlmodel import select

    from penguinctl.state.db import session_scope
    from penguinctl.state.models import AuditEvent

    with session_scope(engine) as s:
        rows = s.exec(select(AuditEvent).where(AuditEvent.resource == resource)).all()
        return [(r.action, r.result, r.details) for r in sorted(rows, key=lambda r: r.id)]


def _pw(keystore, address: str, field: str = "password") -> str | None:
    value = (keystore.get(f"tenants/acme/mailboxes/{address}") or {}).get(field)
    return value.reveal() if value is not None else None


def test_registry_finds_it():
    assert registry.load("mailbox") is MailboxPasswordRotation


def test_candidates_and_due_after_180_days(ctx, clock):
    rotation = MailboxPasswordRotation(ctx)
    items = {i.target: i for i in rotation.candidates()}
    assert set(items) == {f"john@{DOMAIN}", f"sara@{DOMAIN}"}  # the spec reference is not ours
    john = items[f"john@{DOMAIN}"]
    assert john.kind == "mailbox" and john.tenant == "acme"
    assert john.path == f"tenants/acme/mailboxes/john@{DOMAIN}"
    assert john.period == timedelta(days=180)
    assert john.last_rotated == START and not john.is_due(clock())
    assert not john.is_due(START + timedelta(days=179))
    assert john.is_due(START + timedelta(days=180))


def test_rotation_changes_the_password_in_mailu_then_the_secret(ctx, fake, keystore, clock):
    rotation = MailboxPasswordRotation(ctx)
    clock.now = START + timedelta(days=181)
    (item,) = [i for i in rotation.candidates() if i.target == f"john@{DOMAIN}"]
    assert item.is_due(clock())
    summary = rotation.rotate(item)
    assert "MailU on mx1" in summary
    new = _pw(keystore, f"john@{DOMAIN}")
    assert new != "old-john" and len(new) >= 32
    assert fake.login(f"john@{DOMAIN}", new)
    assert not fake.login(f"john@{DOMAIN}", "old-john")
    assert _pw(keystore, f"john@{DOMAIN}", "next_password") is None
    assert _pw(keystore, f"john@{DOMAIN}", "rotated_at") == clock().isoformat()
    assert fake.login(f"sara@{DOMAIN}", "old-sara")  # only the target
    again = {i.target: i for i in rotation.candidates()}[f"john@{DOMAIN}"]
    assert again.last_rotated == clock() and not again.is_due(clock())
    events = _audit(ctx.engine, f"mailbox/john@{DOMAIN}")
    assert [(a, r) for a, r, _ in events] == [
        ("secret.rotate.prepare", "ok"),
        ("mailbox.password.set", "ok"),
        ("secret.rotate.promote", "ok"),
    ]
    assert all(new not in str(d) and "old-john" not in str(d) for _, _, d in events)
    from eventkit import emitted

    (rotated,) = emitted(ctx.engine, "secret.rotated", kind="mailbox", target=f"john@{DOMAIN}")
    assert rotated["tenant"] == "acme" and new not in str(rotated)


@pytest.mark.parametrize("crash_at", ["after_prepare", "after_mailu"])
def test_a_crash_at_any_step_converges(ctx, fake, keystore, clock, monkeypatch, crash_at):
    from penguinctl.providers.mailu_api import MailuClient

    rotation = MailboxPasswordRotation(ctx)
    (item,) = [i for i in rotation.candidates() if i.target == f"sara@{DOMAIN}"]
    real_set = MailuClient.set_password

    class Crash(BaseException):
        pass

    def crashing(self, email, password):
        if crash_at == "after_mailu":
            real_set(self, email, password)
        raise Crash()

    monkeypatch.setattr(MailuClient, "set_password", crashing)
    with pytest.raises(Crash):
        rotation.rotate(item)
    pending = _pw(keystore, f"sara@{DOMAIN}", "next_password")
    assert pending and _pw(keystore, f"sara@{DOMAIN}") == "old-sara"
    # MailU has the old password (crash before the PATCH) or the new one (after it)
    assert fake.login(f"sara@{DOMAIN}", pending if crash_at == "after_mailu" else "old-sara")

    monkeypatch.setattr(MailuClient, "set_password", real_set)
    summary = MailboxPasswordRotation(ctx).rotate(item)
    assert "(resumed)" in summary
    assert _pw(keystore, f"sara@{DOMAIN}") == pending  # the same password, not a third one
    assert _pw(keystore, f"sara@{DOMAIN}", "next_password") is None
    assert fake.login(f"sara@{DOMAIN}", pending) and not fake.login(f"sara@{DOMAIN}", "old-sara")
    actions = [a for a, _, _ in _audit(ctx.engine, f"mailbox/sara@{DOMAIN}")]
    assert actions[0] == "secret.rotate.prepare" and "secret.rotate.resume" in actions
    assert actions[-1] == "secret.rotate.promote"


def test_mailbox_gone_from_mailu_fails_clearly_and_keeps_the_password(ctx, fake, keystore):
    rotation = MailboxPasswordRotation(ctx)
    (item,) = [i for i in rotation.candidates() if i.target == f"john@{DOMAIN}"]
    fake.remove_user(f"john@{DOMAIN}")
    with pytest.raises(ProviderError, match=r"does not exist in MailU on mx1") as info:
        rotation.rotate(item)
    assert "apply" in info.value.hint
    assert _pw(keystore, f"john@{DOMAIN}") == "old-john"
    events = _audit(ctx.engine, f"mailbox/john@{DOMAIN}")
    assert ("mailbox.password.set", "error") in [(a, r) for a, r, _ in events]


def test_mailu_unreachable_is_a_provider_error(ctx, fake, keystore):
    rotation = MailboxPasswordRotation(ctx)
    (item,) = [i for i in rotation.candidates() if i.target == f"john@{DOMAIN}"]
    fake.inject(403, times=10, body={"message": "Invalid API token"})
    with pytest.raises(ProviderError, match=r"MailU API on mx1.*HTTP 403"):
        rotation.rotate(item)
    assert _pw(keystore, f"john@{DOMAIN}") == "old-john"  # nothing promoted


def test_rotation_waits_for_no_one_holding_the_tenant_lock(ctx):
    from penguinctl.state.lock import TenantLock

    rotation = MailboxPasswordRotation(ctx)
    (item,) = [i for i in rotation.candidates() if i.target == f"john@{DOMAIN}"]
    lock = TenantLock(ctx.engine, ["acme"], operation="apply", actor="someone")
    with lock, pytest.raises(LockHeld):
        rotation.rotate(item)


def test_cli_secrets_rotate_due(ctx, fake, keystore, tmp_path, monkeypatch, capsys, state_url):
    """`penguinctl secrets rotate --kind mailbox --due` through the CLI, with its clock moved."""
    from clitools import run_inprocess

    from penguinctl.cli import secrets_common

    home = tmp_path / "home"
    monkeypatch.setenv("PENGUINCTL_HOME", str(home))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    # the CLI's keystore is the one the fixture filled
    monkeypatch.setenv("PENGUINCTL_MASTER_KEY", _master_key(keystore))
    _copy_keystore(keystore, home / "keystore", tmp_path)
    monkeypatch.setattr(secrets_common, "_now", lambda: START + timedelta(days=200))
    res = run_inprocess(capsys, "secrets", "rotate", "--kind", "mailbox", "--due", "-o", "json")
    assert res.code == 0, res.err + res.out
    rotated = {r["target"] for r in res.json()["results"] if r["result"] == "rotated"}
    assert rotated == {f"john@{DOMAIN}", f"sara@{DOMAIN}"}
    from penguinctl.providers.secrets.keystore import KeystoreBackend

    cli_store = KeystoreBackend(home / "keystore", key_file=tmp_path / "unused.key",
                                master_key=_master_key(keystore))  # fmt: skip
    for local in ("john", "sara"):
        assert fake.login(f"{local}@{DOMAIN}", _pw(cli_store, f"{local}@{DOMAIN}"))
        assert not fake.login(f"{local}@{DOMAIN}", f"old-{local}")


def _master_key(keystore) -> str:
    return keystore.key_file.read_text().strip()


def _copy_keystore(keystore, target, tmp_path) -> None:
    import shutil

    shutil.copytree(keystore.directory, target)
