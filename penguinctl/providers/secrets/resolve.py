"""Resolve secret references (``env:``, ``file:``, ``keystore:``, ``vault:``) at apply time.

``keystore:NAME`` reads field ``value`` of NAME in the configured secrets backend (the keystore,
or Vault under penguinctl's prefix after ``secrets migrate``). ``vault:PATH#KEY`` reads field KEY
of PATH relative to the Vault KV v2 mount (``vault:dns/tsig#secret``), always from Vault.

Resolved values are returned as ``SecretValue`` and never stored: specs, plans and the state store
keep only the reference text. Errors name the reference, never a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from penguinctl.errors import SecretError
from penguinctl.providers.secrets.base import SecretsBackend, SecretValue
from penguinctl.spec.refs import SecretRef

KEYSTORE_FIELD = "value"


def absolute_ref(ref: SecretRef, base_dir: Path) -> str:
    """The reference text with a relative ``file:`` path made absolute (for storing in state)."""
    if ref.scheme == "file":
        return f"file:{ref.resolve_file(base_dir).resolve()}"
    return str(ref)


def resolve(
    ref: SecretRef | str,
    *,
    secrets: SecretsBackend | None,
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> SecretValue:
    ref = SecretRef.parse(ref) if isinstance(ref, str) else ref
    env = os.environ if env is None else env
    if ref.scheme == "env":
        value = env.get(ref.path)
        if not value:
            raise SecretError(
                f"secret {ref}: environment variable {ref.path} is not set",
                hint=f"export {ref.path}=... before running penguinctl",
            )
        return SecretValue(value)
    if ref.scheme == "file":
        path = ref.resolve_file(base_dir or Path.cwd())
        try:
            return SecretValue(path.read_text().rstrip("\r\n"))
        except OSError as exc:
            raise SecretError(
                f"secret {ref}: cannot read {path} ({exc.strerror or type(exc).__name__})",
                hint="check the path and its permissions",
            ) from None
    if ref.scheme == "keystore":
        if secrets is None:
            raise SecretError(f"secret {ref}: no secrets backend configured")
        fields = secrets.get(ref.path)
        if fields is None or KEYSTORE_FIELD not in fields:
            raise SecretError(
                f"secret {ref}: not found in the {secrets.name}",
                hint=f"store it in the keystore at {ref.path}, field '{KEYSTORE_FIELD}'",
            )
        return fields[KEYSTORE_FIELD]
    return _resolve_vault(ref, secrets=secrets, env=env)


def _resolve_vault(
    ref: SecretRef, *, secrets: SecretsBackend | None, env: Mapping[str, str]
) -> SecretValue:
    """``vault:PATH#KEY``: field KEY of the KV v2 secret PATH, relative to the mount (not to
    penguinctl's prefix): ``vault:dns/tsig#secret`` is ``secret/data/dns/tsig``. Read through
    the configured Vault backend, or one built from the ``VAULT_*`` variables."""
    from penguinctl.providers.secrets.vault import VaultBackend

    try:
        vault = secrets if isinstance(secrets, VaultBackend) else VaultBackend.from_env(env)
        fields = vault.read_mount_path(ref.path)
    except SecretError as exc:
        raise SecretError(f"secret {ref}: {exc.message}", hint=exc.hint) from None
    if fields is None or ref.key not in fields:
        what = "has no field " + repr(ref.key) if fields is not None else "does not exist"
        raise SecretError(
            f"secret {ref}: Vault secret {vault.mount}/data/{ref.path.strip('/')} {what}",
            hint="write it with `vault kv put` (the path is relative to the KV mount)",
        )
    return fields[ref.key]
