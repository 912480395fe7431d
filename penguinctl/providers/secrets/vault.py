"""The HashiCorp Vault secrets backend (KV version 2, through hvac).

Secrets live at ``<mount>/data/<prefix><path>`` (defaults: mount ``secret``, prefix
``penguinctl/``), so ``tenants/acme/domains/acme.example/dkim/pm202611`` is the Vault secret
``secret/data/penguinctl/tenants/acme/domains/acme.example/dkim/pm202611``. How Vault is reached
and configured: ``vault_config`` (environment variables) and ``vault_session`` (tokens).

Semantics: ``get`` returns the latest version (a soft-deleted or destroyed latest version counts
as missing); ``put`` writes with check-and-set against the version it just read and retries once
after a conflicting concurrent write; ``delete`` destroys every version and the metadata; ``list``
walks the mount recursively with LIST. Every failure is a one-line ``SecretError`` naming the
path (and, for a denied request, the capability the token's policy lacks) and never a value.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from penguinctl.errors import SecretError
from penguinctl.providers.secrets.base import SecretMeta, SecretsBackend, SecretValue
from penguinctl.providers.secrets.vault_config import (
    DEFAULT_MOUNT,
    DEFAULT_PREFIX,
    DEFAULT_TIMEOUT,
    VaultConfig,
    VaultMetadata,
    VersionInfo,
)
from penguinctl.providers.secrets.vault_session import VaultSession


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class VaultBackend(VaultSession, SecretsBackend):
    """Secrets in a Vault KV v2 mount, under a prefix. Thread-safe for concurrent use."""

    name = "vault"

    # -- paths --------------------------------------------------------------------------------
    def _full(self, path: str) -> str:
        rel = path.strip("/")
        if not rel or any(seg in ("", ".", "..") for seg in rel.split("/")):
            raise SecretError(f"invalid secret path {path!r}", hint="use a/b/c style paths")
        return self.prefix + rel

    def api_path(self, kind: str, path: str) -> str:
        """The API path a policy names for ``path``: ``<mount>/<kind>/<prefix><path>``."""
        return f"{self.mount}/{kind}/{self._full(path)}"

    # -- reading ------------------------------------------------------------------------------
    def _read(self, full: str) -> tuple[dict[str, Any] | None, int]:
        """(fields of the latest version or None, current version number; 0 if none) of the
        secret at ``full`` (a path inside the mount)."""
        import hvac.exceptions as hx

        def read(client: Any) -> Any:
            try:
                return client.secrets.kv.v2.read_secret_version(
                    path=full, mount_point=self.mount, raise_on_deleted_version=False
                )
            except hx.InvalidPath as exc:
                return exc.json if isinstance(exc.json, dict) else None

        doc = self._call(read, api_path=f"{self.mount}/data/{full}", capability="read")
        data = (doc or {}).get("data") or {}
        meta = data.get("metadata") or {}
        version = int(meta.get("version") or 0)
        fields = data.get("data")
        if fields is None or meta.get("deletion_time") or meta.get("destroyed"):
            return None, version
        return dict(fields), version

    def get(self, path: str) -> dict[str, SecretValue] | None:
        fields, _ = self._read(self._full(path))
        if fields is None:
            return None
        return {k: SecretValue(_as_text(v)) for k, v in fields.items()}

    def read_mount_path(self, path: str) -> dict[str, SecretValue] | None:
        """Like ``get`` but ``path`` is relative to the mount, not to the prefix (used by
        ``vault:PATH#KEY`` references)."""
        full = path.strip("/")
        if not full:
            raise SecretError("invalid Vault path ''")
        fields, _ = self._read(full)
        if fields is None:
            return None
        return {k: SecretValue(_as_text(v)) for k, v in fields.items()}

    # -- writing ------------------------------------------------------------------------------
    def put(self, path: str, fields: dict[str, str]) -> SecretMeta:
        """Write a new version with check-and-set; one retry after a concurrent write."""
        import hvac.exceptions as hx

        full = self._full(path)
        data = {str(k): str(v) for k, v in fields.items()}
        for attempt in (1, 2):
            _, current = self._read(full)
            capability = "update" if current else "create"

            def write(client: Any, cas: int = current) -> Any:
                return client.secrets.kv.v2.create_or_update_secret(
                    path=full, secret=data, cas=cas, mount_point=self.mount
                )

            try:
                resp = self._call(
                    write, api_path=f"{self.mount}/data/{full}", capability=capability
                )
            except hx.InvalidRequest as exc:
                text = "; ".join(str(e) for e in (exc.errors or []))
                if "check-and-set" in text and attempt == 1:
                    continue
                if "check-and-set" in text:
                    raise SecretError(
                        f"concurrent writes to Vault secret {self.mount}/data/{full}: "
                        "check-and-set failed twice",
                        hint="another process keeps changing this secret; retry when it is done",
                    ) from None
                raise SecretError(
                    f"Vault rejected the write to {self.mount}/data/{full}: {text or 'HTTP 400'}"
                ) from None
            meta = (resp or {}).get("data") or {}
            created = meta.get("created_time") or ""
            return SecretMeta(path, int(meta.get("version") or current + 1), created, created)
        raise AssertionError("unreachable")  # pragma: no cover

    def delete(self, path: str) -> None:
        """Destroy every version and the metadata; a missing secret is not an error."""
        import hvac.exceptions as hx

        full = self._full(path)

        def delete(client: Any) -> None:
            with contextlib.suppress(hx.InvalidPath):
                client.secrets.kv.v2.delete_metadata_and_all_versions(
                    path=full, mount_point=self.mount
                )

        self._call(delete, api_path=f"{self.mount}/metadata/{full}", capability="delete")

    def set_custom_metadata(self, path: str, custom: Mapping[str, str]) -> None:
        """Replace the secret's ``custom_metadata`` (e.g. ``rotation_policy``, ``last_rotated``)."""
        full = self._full(path)
        self._call(
            lambda c: c.secrets.kv.v2.update_metadata(
                path=full, custom_metadata=dict(custom), mount_point=self.mount
            ),
            api_path=f"{self.mount}/metadata/{full}",
            capability="update",
        )

    # -- listing and metadata -----------------------------------------------------------------
    def _list_dir(self, folder: str) -> list[str]:
        """Keys directly under ``folder`` (inside the mount; "" or ending in "/")."""
        import hvac.exceptions as hx

        def ls(client: Any) -> list[str]:
            try:
                resp = client.secrets.kv.v2.list_secrets(path=folder, mount_point=self.mount)
            except hx.InvalidPath:
                return []
            return list(((resp or {}).get("data") or {}).get("keys") or [])

        return self._call(ls, api_path=f"{self.mount}/metadata/{folder}", capability="list")

    def children(self, folder: str = "") -> set[str]:
        """Keys directly under ``folder`` (one LIST; a folder ends in "/")."""
        return set(self._list_dir(self.prefix + folder.lstrip("/")))

    def list(self, prefix: str = "") -> list[str]:
        """Every secret path under ``prefix`` (a string prefix, as in the keystore), sorted."""
        prefix = prefix.lstrip("/")
        start = prefix[: prefix.rfind("/") + 1]  # the folder part
        found: list[str] = []
        folders = [self.prefix + start]
        while folders:
            folder = folders.pop()
            for key in self._list_dir(folder):
                child = folder + key
                if key.endswith("/"):
                    folders.append(child)
                else:
                    rel = child[len(self.prefix) :]
                    if rel.startswith(prefix):
                        found.append(rel)
        return sorted(found)

    def metadata(self, path: str) -> VaultMetadata | None:
        """Versions, times and custom metadata of the secret, or None when it does not exist."""
        import hvac.exceptions as hx

        full = self._full(path)

        def read(client: Any) -> Any:
            try:
                return client.secrets.kv.v2.read_secret_metadata(path=full, mount_point=self.mount)
            except hx.InvalidPath:
                return None

        doc = self._call(read, api_path=f"{self.mount}/metadata/{full}", capability="read")
        if not doc:
            return None
        d = doc.get("data") or {}
        versions = [
            VersionInfo(
                int(num),
                v.get("created_time") or "",
                v.get("deletion_time") or "",
                bool(v.get("destroyed")),
            )
            for num, v in (d.get("versions") or {}).items()
        ]
        return VaultMetadata(
            path=path,
            current_version=int(d.get("current_version") or 0),
            oldest_version=int(d.get("oldest_version") or 0),
            created_at=d.get("created_time") or "",
            updated_at=d.get("updated_time") or "",
            max_versions=int(d.get("max_versions") or 0),
            cas_required=bool(d.get("cas_required")),
            custom_metadata=dict(d.get("custom_metadata") or {}),
            versions=sorted(versions, key=lambda v: v.version),
        )

    def meta(self, path: str) -> SecretMeta | None:
        """The keystore-compatible summary: current version, created and updated times."""
        md = self.metadata(path)
        if md is None:
            return None
        return SecretMeta(path, md.current_version, md.created_at, md.updated_at)


__all__ = [
    "DEFAULT_MOUNT",
    "DEFAULT_PREFIX",
    "DEFAULT_TIMEOUT",
    "VaultBackend",
    "VaultConfig",
    "VaultMetadata",
    "VersionInfo",
]
