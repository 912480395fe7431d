"""Where and how to reach Vault: ``VaultConfig`` from the environment, and KV v2 metadata types.

Configuration comes from the standard Vault variables plus two of penguinctl's own:

- ``VAULT_ADDR`` (required), ``VAULT_NAMESPACE``, ``VAULT_CACERT`` (CA bundle file),
  ``VAULT_SKIP_VERIFY`` (``1``/``true``: no TLS verification; for test servers only);
- ``VAULT_TOKEN``, or AppRole with ``VAULT_ROLE_ID`` + ``VAULT_SECRET_ID`` (login at
  ``auth/<VAULT_APPROLE_MOUNT or approle>/login`` on first use);
- ``PENGUINCTL_VAULT_MOUNT`` (default ``secret``) and ``PENGUINCTL_VAULT_PREFIX`` (default
  ``penguinctl/``; empty means the root of the mount).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from penguinctl.errors import SecretError

DEFAULT_MOUNT = "secret"
DEFAULT_PREFIX = "penguinctl/"
DEFAULT_TIMEOUT = 30.0
_TRUE = ("1", "true", "yes", "on")


def _norm_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


@dataclass(frozen=True)
class VaultConfig:
    """Where and how to reach Vault. Build it with ``from_env``; it holds credentials, so its
    ``repr`` leaves them out."""

    addr: str
    token: str | None = field(default=None, repr=False)
    role_id: str | None = field(default=None, repr=False)
    secret_id: str | None = field(default=None, repr=False)
    approle_mount: str = "approle"
    namespace: str | None = None
    cacert: str | None = None
    skip_verify: bool = False
    mount: str = DEFAULT_MOUNT
    prefix: str = DEFAULT_PREFIX
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> VaultConfig:
        """Read the configuration from environment variables (see the module docstring)."""
        addr = (env.get("VAULT_ADDR") or "").strip()
        if not addr:
            raise SecretError(
                "the Vault secrets backend is not configured: VAULT_ADDR is not set",
                hint="export VAULT_ADDR=https://vault.example:8200 (and VAULT_TOKEN or "
                "VAULT_ROLE_ID/VAULT_SECRET_ID)",
            )
        prefix = env.get("PENGUINCTL_VAULT_PREFIX")
        return cls(
            addr=addr.rstrip("/"),
            token=env.get("VAULT_TOKEN") or None,
            role_id=env.get("VAULT_ROLE_ID") or None,
            secret_id=env.get("VAULT_SECRET_ID") or None,
            approle_mount=(env.get("VAULT_APPROLE_MOUNT") or "approle").strip("/"),
            namespace=env.get("VAULT_NAMESPACE") or None,
            cacert=env.get("VAULT_CACERT") or None,
            skip_verify=(env.get("VAULT_SKIP_VERIFY") or "").strip().lower() in _TRUE,
            mount=(env.get("PENGUINCTL_VAULT_MOUNT") or DEFAULT_MOUNT).strip("/"),
            prefix=_norm_prefix(DEFAULT_PREFIX if prefix is None else prefix),
        )


@dataclass(frozen=True)
class VersionInfo:
    version: int
    created_at: str
    deleted_at: str  # "" unless soft-deleted
    destroyed: bool


@dataclass(frozen=True)
class VaultMetadata:
    """KV v2 metadata of one secret (no values)."""

    path: str
    current_version: int
    oldest_version: int
    created_at: str
    updated_at: str
    max_versions: int
    cas_required: bool
    custom_metadata: dict[str, str]
    versions: list[VersionInfo]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "current_version": self.current_version,
            "oldest_version": self.oldest_version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "max_versions": self.max_versions,
            "cas_required": self.cas_required,
            "custom_metadata": dict(self.custom_metadata),
            "versions": [
                {
                    "version": v.version,
                    "created_at": v.created_at,
                    "deleted_at": v.deleted_at,
                    "destroyed": v.destroyed,
                }
                for v in self.versions
            ],
        }
