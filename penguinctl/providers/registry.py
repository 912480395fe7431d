"""Build the provider instances a plan needs, by the names resources carry in ``provider``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from penguinctl.errors import ProviderError
from penguinctl.providers.base import Provider, RecordOnlyProvider
from penguinctl.providers.secrets.base import SecretsBackend


class Providers:
    """Lazily created provider instances, keyed by name (``state``, ``dkim``, ``dns:<name>``)."""

    def __init__(
        self,
        *,
        secrets_factory,
        dns_configs: Mapping[str, dict[str, Any]],
        env: Mapping[str, str] | None = None,
        journal_factory=None,
        server_configs: Mapping[str, dict[str, Any]] | None = None,
        db=None,
        actor: str = "penguinctl",
        server_tenants: Mapping[str, str] | None = None,
    ) -> None:
        self._secrets_factory = secrets_factory
        self._env = dict(os.environ if env is None else env)
        self._dns_configs = dict(dns_configs)
        self._journal_factory = journal_factory  # provider name -> state.journal.Journal
        # server name -> its data (desired over recorded): endpoints for SSH and the mail stack
        self.server_configs: dict[str, dict[str, Any]] = dict(server_configs or {})
        # server name -> its owner ("": the platform): where its secrets live
        self.server_tenants: dict[str, str] = dict(server_tenants or {})
        self.db = db  # the state store engine (SSH host keys are pinned there)
        self.actor = actor
        self._cache: dict[str, Provider] = {}

    @property
    def env(self) -> dict[str, str]:
        return dict(self._env)

    @property
    def secrets(self) -> SecretsBackend:
        return self._secrets_factory()

    def get(self, name: str) -> Provider:
        if name not in self._cache:
            self._cache[name] = self._build(name)
        return self._cache[name]

    def _build(self, name: str) -> Provider:
        if name in ("state", "server:external", "server:static"):
            return RecordOnlyProvider(name)
        if name == "server:hostwinds":
            return self._hostwinds(name)
        if name == "dkim":
            from penguinctl.providers.dkim import DkimProvider

            return DkimProvider(name, self.secrets)
        if name.startswith("mail:"):
            return self._mailu(name, name.split(":", 1)[1])
        if name.startswith("mailstack:"):
            return self._mailstack(name, name.split(":", 1)[1])
        if name.startswith("dns:"):
            cfg = self._dns_configs.get(name[4:])
            if cfg is None:
                raise ProviderError(
                    f"DNS provider {name[4:]!r} is neither in the spec nor recorded in state",
                    hint="add its DnsProvider document back to the spec",
                )
            if cfg.get("type") == "zonefile":
                from penguinctl.providers.dns.zonefile import ZonefileProvider

                return ZonefileProvider(
                    name,
                    Path(cfg["directory"]),
                    nameservers=cfg.get("nameservers") or None,
                    hostmaster=cfg.get("hostmaster"),
                    default_ttl=cfg.get("ttl", 3600),
                )
            if cfg.get("type") == "rfc2136":
                return self._rfc2136(name, cfg)
            if cfg.get("type") == "cloudflare":
                return self._cloudflare(name, cfg)
            raise ProviderError(f"DNS provider type {cfg.get('type')!r} is not available yet")
        raise ProviderError(f"no provider named {name!r} in this version of penguinctl")

    def _secret(self, ref: str) -> str:
        from penguinctl.providers.secrets.resolve import resolve

        return resolve(ref, secrets=self.secrets, env=self._env).reveal()

    def _rfc2136(self, name: str, cfg: dict[str, Any]) -> Provider:
        from penguinctl.providers.dns.rfc2136 import Rfc2136Provider

        tsig = cfg.get("tsig") or {}
        return Rfc2136Provider(
            name,
            server=cfg["server"],
            port=cfg.get("port", 53),
            tsig_name=tsig.get("name"),
            tsig_algorithm=tsig.get("algorithm", "hmac-sha256"),
            tsig_secret=self._secret(tsig["secret"]) if tsig else None,
            default_ttl=cfg.get("ttl", 3600),
            max_parallel=cfg.get("max_parallel", 4),
        )

    def _cloudflare(self, name: str, cfg: dict[str, Any]) -> Provider:
        from penguinctl.providers.dns.cloudflare import CloudflareProvider

        return CloudflareProvider(
            name,
            token=self._secret(cfg["api_token"]),
            base_url=self._env.get("CLOUDFLARE_API_URL") or None,
            default_ttl=cfg.get("ttl", 3600),
            rate_limit=cfg.get("rate_limit", 4.0),
            max_parallel=cfg.get("max_parallel", 4),
        )

    def _mailu(self, name: str, server: str) -> Provider:
        """MailU's REST API of ``server``: ``mail.api_url`` (default ``https://<hostname>/api/v1``)
        and the token from ``servers/<server>/mailu``, read at the first request (the MailU
        install generates it earlier in the same apply). Never SSH."""
        from penguinctl.providers.mailu import MailuProvider
        from penguinctl.providers.mailu_api import MailuClient

        data = self.server_configs.get(server)
        if data is None:
            raise ProviderError(
                f"server {server} is neither in the spec nor recorded in state",
                hint="add its Server document back to the spec",
            )
        api_url = (data.get("mail") or {}).get("api_url") or (
            f"https://{str(data.get('hostname', '')).rstrip('.')}/api/v1"
        )
        tenant = self.server_tenants.get(server, "")
        client = MailuClient(
            api_url, lambda: mailu_api_tokens(self.secrets, server, tenant), server=server
        )
        return MailuProvider(
            name, server=server, client=client, secrets=self.secrets, env=self._env
        )

    def _mailstack(self, name: str, server: str) -> Provider:
        from penguinctl.providers.mailstack import MailstackProvider
        from penguinctl.remote.hostkeys import StateHostKeyStore

        data = self.server_configs.get(server)
        if data is None or self.db is None:
            raise ProviderError(f"server {server} is neither in the spec nor recorded in state")
        return MailstackProvider(
            name,
            server=server,
            server_data=lambda: {**data, **self._recorded_server(server)},
            secrets=self.secrets,
            host_keys=StateHostKeyStore(self.db, actor=self.actor),
            env=self._env,
            audit=self._audit,
            servers=lambda: {
                n: (self.server_tenants.get(n, ""), {**d, **self._recorded_server(n)})
                for n, d in self.server_configs.items()
            },
            tenant=self.server_tenants.get(server, ""),
            domain_owner=self._domain_owner,
        )

    def _domain_owner(self, domain: str) -> str:
        """The tenant a domain is recorded for (where its DKIM keys live)."""
        from penguinctl.plan.confine import domain_owners

        return domain_owners(self.db).get(domain, "")

    def _recorded_server(self, server: str) -> dict[str, Any]:
        """The server's data as recorded now (its IPs once a new server is active)."""
        from penguinctl.state import repo
        from penguinctl.state.db import session_scope

        with session_scope(self.db) as session:
            rows = repo.list_resources(session, kind="server", name=server)
            return dict(rows[0].data or {}) if rows else {}

    def _audit(self, action: str, resource: str, details: dict[str, Any]) -> None:
        """An audit event for a provider's side step (key bootstrap...), in its own transaction."""
        if self.db is None:
            return
        from penguinctl.state import audit
        from penguinctl.state.db import session_scope

        with session_scope(self.db) as session:
            audit.record(
                session,
                actor=self.actor,
                tenant="",
                action=action,
                resource=resource,
                result="ok",
                details=details,
            )

    def _hostwinds(self, name: str) -> Provider:
        from penguinctl.providers.hostwinds import HostwindsProvider

        journal = self._journal_factory(name) if self._journal_factory else None
        return HostwindsProvider(
            name,
            client=hostwinds_client(self._env, self.secrets),
            journal=journal,
            poll_interval=_seconds(self._env, "HOSTWINDS_POLL_INTERVAL", 30.0),
            poll_timeout=_seconds(self._env, "HOSTWINDS_POLL_TIMEOUT", 1800.0),
        )


def _seconds(env: Mapping[str, str], var: str, default: float) -> float:
    text = env.get(var)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        from penguinctl.errors import ConfigError

        raise ConfigError(f"{var}={text!r} is not a number of seconds", hint=f"e.g. {var}=30")
    return value


def mailu_api_token(secrets: SecretsBackend, server: str, tenant: str | None) -> str:
    """The MailU API token of ``server`` (``<owner>/servers/<server>/mailu``, ``api_token``)."""
    from penguinctl.mailu.credentials import mailu_credentials, secret_path

    token = mailu_credentials(secrets, server, tenant=tenant, create=False).get("api_token")
    if token is None or not token.reveal():
        raise ProviderError(
            f"no MailU API token for server {server}: the secret "
            f"{secret_path(tenant, server)} has no api_token",
            hint="apply the server's mail stack first: it generates the token and renders it "
            "into MailU's API_TOKEN",
        )
    return token.reveal()


def mailu_api_tokens(secrets: SecretsBackend, server: str, tenant: str | None) -> list[str]:
    """The token MailU runs with, then, while a credential rotation is under way, the next one
    (``next_api_token``): the client tries the second only after the first is refused."""
    from penguinctl.mailu.credentials import mailu_credentials

    tokens = [mailu_api_token(secrets, server, tenant)]
    following = mailu_credentials(secrets, server, tenant=tenant, create=False).get(
        "next_api_token"
    )
    if following is not None and following.reveal():
        tokens.append(following.reveal())
    return tokens


def hostwinds_client(env: Mapping[str, str], secrets: SecretsBackend):
    """``penguinctl.providers.hostwinds_client.client_for`` (kept under its old name)."""
    from penguinctl.providers.hostwinds_client import client_for

    return client_for(env, secrets)
