"""MailU's own credentials (admin password, API token, secret key) rotate through `secrets
rotate` (kind `mailu`, every 180 days) on a real sshd with the recording docker shims and the
MailU API double, which, like MailU's admin container, answers to the API_TOKEN of the
server's mailu.env. A rotation stopped after the stack took the new token still leaves the API
usable for a mailbox rotation (the client holds both tokens), and a re-run finishes it."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import pytest
from clitools import run_inprocess
from daemons import need_binary
from fakes.mailu import FakeMailu
from recoverykit import DOMAIN, TOKEN, start_world

pytestmark = pytest.mark.clock


class EnvMailu(FakeMailu):
    """The API token is MailU's API_TOKEN from ``<root>/mailu.env`` once that file exists."""

    root: Path | None = None

    @property
    def api_token(self) -> str:
        env = self.root / "mailu.env" if self.root else None
        if env is not None and env.exists():
            for line in env.read_text().splitlines():
                if line.startswith("API_TOKEN="):
                    return line.split("=", 1)[1]
        return self._initial

    @api_token.setter
    def api_token(self, value: str) -> None:
        self._initial = value


def _secret(path: str) -> dict[str, str]:
    from penguinctl.cli.context import AppContext
    from penguinctl.settings import load_settings

    got = AppContext(settings=load_settings()).secrets().get(path) or {}
    return {k: v.reveal() for k, v in got.items()}


def test_mailu_credentials_rotate_without_api_downtime(tmp_path, monkeypatch, capsys):
    need_binary("ssh-keygen", "openssh-client")
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp_path / 'home' / 'state.db'}")
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")

    def cli(*args):
        return run_inprocess(capsys, *args)

    with contextlib.ExitStack() as stack:
        w = start_world(tmp_path, stack, mailu_cls=EnvMailu)
        w.mailu.root = w.root
        assert cli("init").code == 0
        token = tmp_path / "token.json"
        token.write_text(f'{{"api_token": "{TOKEN}"}}')
        assert cli("secrets", "put", "tenants/acme/servers/mx1/mailu", "-f", token).code == 0
        assert cli("apply", "-f", w.spec, "--yes").code == 0
        admin = f"admin@{DOMAIN}"
        created = httpx.post(
            f"{w.mailu.url}/user",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json={"email": admin, "raw_password": "initial-admin-pw-1"},
        )
        assert created.status_code == 200, created.text
        before = _secret("tenants/acme/servers/mx1/mailu")

        listed = cli("secrets", "rotate", "-k", "mailu", "-o", "json")
        assert listed.code == 0 and "tenants/acme/servers/mx1/mailu" in listed.out

        # stopped after the stack took the new token, before the secret was promoted
        from penguinctl.errors import ProviderError
        from penguinctl.providers.mailu_api import MailuClient

        real = MailuClient.domains

        def broken(self):
            raise ProviderError("the connection dropped")

        monkeypatch.setattr(MailuClient, "domains", broken)
        failed = cli("secrets", "rotate", "mx1", "-k", "mailu")
        assert failed.code != 0
        monkeypatch.setattr(MailuClient, "domains", real)
        mid = _secret("tenants/acme/servers/mx1/mailu")
        assert mid["api_token"] == before["api_token"] and mid["next_api_token"]
        assert w.mailu.api_token == mid["next_api_token"]  # MailU runs with the next token
        assert w.mailu.login(admin, mid["next_admin_password"])

        # the API that mailbox rotation depends on still answers (the client holds both)
        box = cli("secrets", "rotate", f"john@{DOMAIN}", "-k", "mailbox", "-o", "json")
        assert box.code == 0, box.err + box.out
        assert sum(w.mailu.failed_auth.values()) <= 1  # one refused token, never a lockout

        done = cli("secrets", "rotate", "mx1", "-k", "mailu", "-o", "json")
        assert done.code == 0, done.err + done.out
        after = _secret("tenants/acme/servers/mx1/mailu")
        assert not [k for k in after if k.startswith("next_")]
        for field in ("api_token", "secret_key", "admin_password"):
            assert after[field] != before[field] and after[field] == mid[f"next_{field}"]
        env = dict(ln.split("=", 1) for ln in (w.root / "mailu.env").read_text().splitlines()
                   if "=" in ln)  # fmt: skip
        assert env["API_TOKEN"] == after["api_token"]
        assert env["SECRET_KEY"] == after["secret_key"]
        assert w.mailu.login(admin, after["admin_password"])
        again = cli("secrets", "rotate", f"john@{DOMAIN}", "-k", "mailbox")
        assert again.code == 0, again.err

        audit = cli("state", "audit", "-o", "json").out
        for action in (
            "secret.rotate.prepare",
            "mailu.admin_password.set",
            "mailu.env.rendered",
            "secret.rotate.resume",
            "mailu.api_token.live",
            "secret.rotate.promote",
        ):
            assert action in audit  # fmt: skip
        for value in (after["api_token"], after["admin_password"], after["secret_key"]):
            assert value not in audit


def test_mailu_rotation_targets_are_tenant_scoped(tmp_path):
    from fakes.state_rows import record_resources

    from penguinctl.providers.secrets.keystore import KeystoreBackend
    from penguinctl.secret_rotation.base import RotationContext
    from penguinctl.secret_rotation.service import collect
    from penguinctl.state.db import make_engine

    url = f"sqlite:///{tmp_path / 's.db'}"
    record_resources(url, [("mailstack", "acme", "mx1", {"domain": "a.example"}),
                           ("mailstack", "globex", "gx1", {"domain": "g.example"})])  # fmt: skip
    engine = make_engine(url)
    ks = KeystoreBackend(tmp_path / "ks", key_file=tmp_path / "k")
    rctx = RotationContext(engine=engine, secrets=ks, actor="t", env={})
    mine = collect(rctx, ["mailu"], tenant="globex").items
    assert [(i.target, i.path) for i in mine] == [("gx1", "tenants/globex/servers/gx1/mailu")]
    engine.dispose()
