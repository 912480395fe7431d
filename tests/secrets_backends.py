"""Run a test's secret-producing flows on each secrets backend: the embedded keystore and Vault.

Import the fixture into a test module (``from secrets_backends import secrets_backend  # noqa:
F401``) and request it; the CLI then runs with ``PENGUINCTL_SECRETS`` set to ``keystore`` or to
``vault``, the latter with ``VAULT_ADDR``/``VAULT_TOKEN`` pointing at the local Vault double
(``fakes.vault.FakeVault``) and a token holding exactly the minimal policy the README documents.

``secrets_backend.backend()`` is the configured backend as penguinctl builds it (for assertions
on what was stored); ``secrets_backend.vault`` is the double (None for the keystore).

A test that only needs some combinations with the state store can narrow the parameters:
``@pytest.mark.parametrize("secrets_backend", ["vault"], indirect=True)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from fakes.vault import FakeVault

# The README's minimal policy for the default mount and prefix (AppRole/renewal need only the
# default policy Vault attaches to every token).
MINIMAL_POLICY = [
    ("secret/data/penguinctl/*", {"create", "read", "update"}),
    ("secret/metadata/penguinctl/*", {"list", "read", "delete"}),
]
TEST_TOKEN = "hvs.penguinctl-test-token"
BACKENDS = ("keystore", "vault")


@dataclass
class SecretsUnderTest:
    name: str  # keystore | vault
    vault: FakeVault | None

    def backend(self):
        """The backend penguinctl is configured with right now (built from the environment)."""
        from penguinctl.cli.context import AppContext
        from penguinctl.settings import load_settings

        env = dict(os.environ)
        return AppContext(settings=load_settings(env), env=env).secrets()

    def stored(self) -> list[str]:
        """Every secret path penguinctl stored (relative to its prefix)."""
        return self.backend().list()


@pytest.fixture(params=BACKENDS)
def secrets_backend(request, monkeypatch):
    for var in (
        "VAULT_ROLE_ID",
        "VAULT_SECRET_ID",
        "VAULT_NAMESPACE",
        "PENGUINCTL_VAULT_MOUNT",
        "PENGUINCTL_VAULT_PREFIX",
    ):
        monkeypatch.delenv(var, raising=False)
    if request.param == "keystore":
        monkeypatch.setenv("PENGUINCTL_SECRETS", "keystore")
        monkeypatch.delenv("VAULT_ADDR", raising=False)
        monkeypatch.delenv("VAULT_TOKEN", raising=False)
        yield SecretsUnderTest("keystore", None)
        return
    with FakeVault() as vault:
        vault.add_token(TEST_TOKEN, MINIMAL_POLICY)
        monkeypatch.setenv("PENGUINCTL_SECRETS", "vault")
        monkeypatch.setenv("VAULT_ADDR", vault.url)
        monkeypatch.setenv("VAULT_TOKEN", TEST_TOKEN)
        yield SecretsUnderTest("vault", vault)
