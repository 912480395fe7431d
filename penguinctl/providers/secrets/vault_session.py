"""A Vault client session: connection, health, and the token's lifetime (hvac).

Token lifetime: a ``VAULT_TOKEN`` is looked up once (``auth/token/lookup-self``) when the
client connects; an invalid or expired token, or one whose TTL runs out during a long run, fails
with one line saying so (penguinctl does not extend a token it was given). An AppRole token is
penguinctl's own: before a request, when less than a third of its lease (at most 5 minutes) is
left, it is renewed (``auth/token/renew-self``), or, when it cannot be renewed or its max TTL is
reached, penguinctl logs in again; a token revoked under its feet gets one fresh login too. Both
endpoints are in Vault's built-in ``default`` policy.

Every failure is a one-line ``SecretError`` (for a denied request, naming the API path and the
capability the token's policy lacks), never a value. hvac (and through it requests) is imported
on first use, never at import time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Self, TypeVar

from penguinctl.errors import SecretError
from penguinctl.providers.secrets.vault_config import VaultConfig

RENEW_MARGIN_MAX = 300.0  # renew an AppRole token when at most this many seconds are left...
RENEW_MARGIN_FRACTION = 1 / 3  # ...or this fraction of its lease, whichever is smaller

T = TypeVar("T")


class VaultSession:
    """An authenticated hvac client, created on first use; thread-safe."""

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
    def from_env(cls, env: Mapping[str, str]) -> Self:
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
