"""Resolve secret references (``env:``, ``file:``, ``keystore:``, ``vault:``) at apply time.

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
    raise SecretError(
        f"secret {ref}: the Vault backend is not configured in this version",
        hint="use env:, file: or keystore: references for now",
    )
