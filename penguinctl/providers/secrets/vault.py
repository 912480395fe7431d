"""The HashiCorp Vault secrets backend (KV version 2, through hvac).

Secrets live at ``<mount>/data/<prefix><path>`` (defaults: mount ``secret``, prefix
``penguinctl/``), so ``domains/acme.example/dkim/pm202611`` is the Vault secret
``secret/data/penguinctl/domains/acme.example/dkim/pm202611``.

Configuration comes from the standard Vault variables plus two of penguinctl's own:

- ``VAULT_ADDR`` (required), ``VAULT_NAMESPACE``, ``VAULT_CACERT`` (CA bundle file),
  ``VAULT_SKIP_VERIFY`` (``1``/``true``: no TLS verification; for test servers only);
- ``VAULT_TOKEN``, or AppRole with ``VAULT_ROLE_ID`` + ``VAULT_SECRET_ID`` (login at
  ``auth/<VAULT_APPROLE_MOUNT or approle>/login`` on first use);
- ``PENGUINCTL_VAULT_MOUNT`` (default ``secret``) and ``PENGUINCTL_VAULT_PREFIX`` (default
  ``penguinctl/``; empty means the root of the mount).

Token lifetime: a ``VAULT_TOKEN`` is looked up once (``auth/token/lookup-self``) when the
client connects; an invalid or expired token, or one whose TTL runs out during a long run, fails
with one line saying so (penguinctl does not extend a token it was given). An AppRole token is
penguinctl's own: before a request, when less than a third of its lease (at most 5 minutes) is
left, it is renewed (``auth/token/renew-self``), or, when it cannot be renewed or its max TTL is
reached, penguinctl logs in again; a token revoked under its feet gets one fresh login too. Both
endpoints are in Vault's built-in ``default`` policy.

Semantics: ``get`` returns the latest version (a soft-deleted or destroyed latest version counts
as missing); ``put`` writes with check-and-set against the version it just read and retries once
after a conflicting concurrent write; ``delete`` destroys every version and the metadata; ``list``
walks the mount recursively with LIST. Every failure is a one-line ``SecretError`` naming the
path (and, for a denied request, the capability the token's policy lacks) and never a value.

hvac (and through it requests) is imported on first use, never at import time.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from penguinctl.errors import SecretError
from penguinctl.providers.secrets.base import SecretMeta, SecretsBackend, SecretValue

DEFAULT_MOUNT = "secret"
DEFAULT_PREFIX = "penguinctl/"
DEFAULT_TIMEOUT = 30.0
RENEW_MARGIN_MAX = 300.0  # renew an AppRole token when at most this many seconds are left...
RENEW_MARGIN_FRACTION = 1 / 3  # ...or this fraction of its lease, whichever is smaller
_TRUE = ("1", "true", "yes", "on")

T = TypeVar("T")


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


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class VaultBackend(SecretsBackend):
    """Secrets in a Vault KV v2 mount, under a prefix. Thread-safe for concurrent use."""

    name = "vault"

    def __init__(
        self,
        config: VaultConfig,
        *,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._client = client
        self._lock = threading.Lock()
        self._clock = clock  # seconds, for token lifetimes; injectable for tests
        self._approle = False  # the token is our own AppRole login (renewed, re-logged in)
        self._expires: float | None = None  # on self._clock; None: no expiry known
        self._lease = 0.0  # the AppRole token's lease at login / last renewal
        self._renewable = False
        self._expire_text = ""  # when VAULT_TOKEN expires, as Vault said (for messages)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> VaultBackend:
        return cls(VaultConfig.from_env(env))

    @property
    def mount(self) -> str:
        return self.config.mount

    @property
    def prefix(self) -> str:
        return self.config.prefix

    # -- connection ---------------------------------------------------------------------------
    def _connect(self) -> Any:
        """The authenticated hvac client, created (health check, AppRole login) on first use."""
        if self._client is not None:
            return self._client
        with self._lock:
            if self._client is not None:
                return self._client
            cfg = self.config
            if not cfg.token and not (cfg.role_id and cfg.secret_id):
                raise SecretError(
                    f"no Vault credentials for {cfg.addr}: VAULT_TOKEN is not set "
                    "(nor VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole)",
                    hint="export VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID",
                )
            import hvac

            verify: bool | str = True
            if cfg.skip_verify:
                verify = False
            elif cfg.cacert:
                verify = cfg.cacert
            # token="" (not None) keeps hvac from reading VAULT_TOKEN/~/.vault-token itself
            client = hvac.Client(
                url=cfg.addr,
                token=cfg.token or "",
                namespace=cfg.namespace,
                verify=verify,
                timeout=cfg.timeout,
            )
            self._check_health(client)
            if cfg.token:
                self._lookup_token(client)
            else:
                self._approle_login(client)
            self._client = client
            return client

    def _check_health(self, client: Any) -> None:
        cfg = self.config
        resp = self._net(lambda: client.sys.read_health_status(method="GET"))
        status = getattr(resp, "status_code", 200)
        if status == 503:
            raise SecretError(
                f"Vault at {cfg.addr} is sealed",
                hint="unseal it (`vault operator unseal`, threshold of key shares), then retry",
            )
        if status == 501:
            raise SecretError(
                f"Vault at {cfg.addr} is not initialized", hint="run `vault operator init`"
            )

    def _approle_login(self, client: Any) -> None:
        """Log in with the role and secret IDs; remember the token's lease. Callers hold the
        lock (or are the only thread, during ``_connect``)."""
        import hvac.exceptions as hx

        cfg = self.config
        try:
            resp = self._net(
                lambda: client.auth.approle.login(
                    role_id=cfg.role_id, secret_id=cfg.secret_id, mount_point=cfg.approle_mount
                )
            )
        except (hx.InvalidRequest, hx.Forbidden, hx.Unauthorized, hx.InvalidPath) as exc:
            reason = "; ".join(str(e) for e in (exc.errors or [])) or type(exc).__name__
            raise SecretError(
                f"Vault AppRole login at auth/{cfg.approle_mount} on {cfg.addr} failed: {reason}",
                hint="check VAULT_ROLE_ID and VAULT_SECRET_ID (secret IDs expire)",
            ) from None
        auth = (resp.get("auth") if isinstance(resp, dict) else None) or {}
        self._approle = True
        self._track_lease(auth)

    def _track_lease(self, auth: Mapping[str, Any]) -> None:
        lease = float(auth.get("lease_duration") or 0)
        self._lease = lease
        self._renewable = bool(auth.get("renewable"))
        self._expires = self._clock() + lease if lease > 0 else None

    def _margin(self) -> float:
        return min(RENEW_MARGIN_MAX, self._lease * RENEW_MARGIN_FRACTION)

    def _lookup_token(self, client: Any) -> None:
        """Look VAULT_TOKEN up once: reject an invalid or expired token now, with one clear
        line, and remember when it expires."""
        import hvac.exceptions as hx

        cfg = self.config
        try:
            resp = self._net(lambda: client.auth.token.lookup_self())
        except (hx.Forbidden, hx.Unauthorized):
            raise SecretError(
                f"Vault at {cfg.addr} rejected VAULT_TOKEN: the token is invalid or expired",
                hint="log in again (`vault login`) and export the new VAULT_TOKEN, or use "
                "AppRole (VAULT_ROLE_ID/VAULT_SECRET_ID), whose token penguinctl renews itself",
            ) from None
        data = ((resp or {}).get("data") if isinstance(resp, dict) else None) or {}
        ttl = float(data.get("ttl") or 0)
        self._expire_text = str(data.get("expire_time") or "")
        self._expires = self._clock() + ttl if ttl > 0 else None

    def _ensure_fresh(self, client: Any) -> None:
        """Before a request: fail clearly if VAULT_TOKEN expired; renew (or replace) an AppRole
        token that is close to its end."""
        expires = self._expires
        if expires is None:
            return
        if not self._approle:
            if expires <= self._clock():
                when = f" at {self._expire_text}" if self._expire_text else ""
                raise SecretError(
                    f"the Vault token (VAULT_TOKEN) expired{when} during this run",
                    hint="use a token with a longer TTL, or AppRole (VAULT_ROLE_ID/"
                    "VAULT_SECRET_ID), whose token penguinctl renews itself; then re-run: "
                    "finished work is not redone",
                )
            return
        if expires - self._clock() > self._margin():
            return
        with self._lock:
            expires = self._expires
            if expires is not None and expires - self._clock() > self._margin():
                return  # another thread renewed it meanwhile
            renewable = self._renewable and expires is not None and expires > self._clock()
            if renewable and self._renew(client):
                return
            self._approle_login(client)

    def _renew(self, client: Any) -> bool:
        """Renew the AppRole token; False when that did not give it a useful lease (not
        renewable, max TTL reached, already revoked): the caller logs in again."""
        import hvac.exceptions as hx

        try:
            resp = self._net(lambda: client.auth.token.renew_self())
        except (hx.InvalidRequest, hx.Forbidden, hx.Unauthorized, hx.InvalidPath):
            return False
        auth = ((resp or {}).get("auth") if isinstance(resp, dict) else None) or {}
        lease = float(auth.get("lease_duration") or 0)
        if lease <= self._margin():  # capped by the max TTL: about to expire for good
            return False
        self._renewable = bool(auth.get("renewable"))
        self._expires = self._clock() + lease
        return True

    def _net(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` mapping network and sealed-Vault failures to one-line SecretErrors."""
        import hvac.exceptions as hx
        import requests

        cfg = self.config
        try:
            return fn()
        except requests.exceptions.SSLError:
            raise SecretError(
                f"TLS verification of Vault at {cfg.addr} failed",
                hint="point VAULT_CACERT at the CA bundle that signed Vault's certificate",
            ) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            kind = "timed out" if isinstance(exc, requests.exceptions.Timeout) else "failed"
            raise SecretError(
                f"Vault at {cfg.addr} is unreachable (connection {kind})",
                hint="check VAULT_ADDR and that Vault is running and reachable",
            ) from None
        except hx.VaultDown:
            raise SecretError(
                f"Vault at {cfg.addr} is sealed or unavailable (HTTP 503)",
                hint="unseal it (`vault operator unseal`) or wait for a standby to take over",
            ) from None

    def _call(self, fn: Callable[[Any], T], *, api_path: str, capability: str) -> T:
        """Call ``fn(client)``; a denied request names ``api_path`` and ``capability``."""
        import hvac.exceptions as hx

        client = self._connect()
        self._ensure_fresh(client)
        try:
            try:
                return self._net(lambda: fn(client))
            except (hx.Forbidden, hx.Unauthorized):
                if not self._approle:
                    raise
                # our AppRole token may have been revoked or expired early: one fresh login
                with self._lock:
                    self._approle_login(client)
                return self._net(lambda: fn(client))
        except (hx.Forbidden, hx.Unauthorized):
            raise SecretError(
                f"Vault denied '{capability}' on {api_path}: permission denied",
                hint=f"grant the token's policy the '{capability}' capability on {api_path} "
                "(or the token is invalid or expired)",
            ) from None
        except hx.RateLimitExceeded:
            raise SecretError(
                f"Vault rate-limited the request to {api_path} (HTTP 429)",
                hint="retry later or raise the rate limit quota",
            ) from None

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
