"""The ``mailstack:<server>`` provider: MailU installed and converged on one server over SSH.

A create or update connects with the server's admin key (bootstrapping it on first contact
through the initial access, ``penguinctl.remote.bootstrap``: a static server's ``initial_key``
from the spec, a Hostwinds server's root password from the Hostwinds API, fetched only when the
admin key does not log in yet), runs the MailU playbook and syncs the DKIM signing keys
(``penguinctl.mailu.install.converge``). Both are idempotent, so a re-run after a crash
converges. A delete only forgets the stack: penguinctl never removes a mail
server's data (``/mailu``); the note says so.

``read`` returns None (trust the state store): checking a host for drift is ``apply --check``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from penguinctl.errors import ProviderError
from penguinctl.plan.changes import Action, Change, ChangeResult
from penguinctl.providers.base import Provider

Audit = Callable[[str, str, dict[str, Any]], None]  # (action, resource, details)


class MailstackProvider(Provider):
    max_parallel = 1  # one install at a time per server (each server has its own instance)

    def __init__(
        self,
        name: str,
        *,
        server: str,
        server_data: dict[str, Any] | Callable[[], dict[str, Any]],
        secrets,
        host_keys,
        env: dict[str, str],
        audit: Audit | None = None,
        servers: Callable[[], dict[str, tuple[str, dict[str, Any]]]] | None = None,
        tenant: str = "",
        domain_owner: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(name)
        self.domain_owner = domain_owner  # domain -> tenant, for its DKIM keys
        self.tenant = tenant  # the server's owner ("": the platform)
        # name -> (tenant, data) of every server, asked when this one has a jump Server
        self._servers = servers
        self.server = server
        # a callable is asked at connect time: a server created earlier in the same apply
        # has its address recorded by then
        self._server_data = server_data
        self.secrets = secrets
        self.host_keys = host_keys
        self.env = env
        self.audit = audit

    @property
    def server_data(self) -> dict[str, Any]:
        data = self._server_data
        return dict(data() if callable(data) else data)

    def connect(self):
        """An open admin connection to the server (bootstrapping the admin key if needed), through
        its jump hosts (a jump Server is bootstrapped the same way, with its own initial access)."""
        from penguinctl.remote import sshconfig
        from penguinctl.remote.servers import endpoint_of

        server_data = self.server_data
        routed = bool((server_data.get("ssh") or {}).get("via"))
        servers = self._servers() if routed and self._servers is not None else {}
        ep = endpoint_of(self.server, server_data, servers, tenant=self.tenant)
        if ep is None:
            raise ProviderError(
                f"server {self.server}: no SSH address known yet",
                hint="apply the server first (a Hostwinds server gets its IP when it is active)",
            )
        return self._admin(ep, server_data, servers, sshconfig.load(self.env))

    def _admin(self, ep, data: dict[str, Any], servers, ssh_config):
        from penguinctl.providers.secrets.resolve import resolve
        from penguinctl.remote.bootstrap import Target, admin_connection
        from penguinctl.remote.servers import Endpoint, trust_hint
        from penguinctl.remote.ssh import SshConnection

        via = None
        if isinstance(ep.via, Endpoint):
            jump, jump_data = ep.via, servers[ep.via.server][1]
            via = lambda: self._admin(jump, jump_data, servers, ssh_config)  # noqa: E731
        elif isinstance(ep.via, str):
            host = ep.via
            via = lambda: SshConnection.jump(  # noqa: E731
                host, host_keys=self.host_keys, ssh_config=ssh_config
            )
        ref = (data.get("static") or {}).get("initial_key")
        initial = resolve(ref, secrets=self.secrets, env=self.env) if ref else None
        password = None
        if data.get("provider") == "hostwinds":
            password = lambda: self._root_password(ep.server, data)  # noqa: E731  only on need

        def audit(action: str, details: dict[str, Any]) -> None:
            if self.audit:
                self.audit(action, f"server/{ep.server}", details)

        target = Target(
            ep.server, ep.host, ep.port, ep.user, via=via, ssh_config=ssh_config,
            trust_hint=trust_hint(ep.server), tenant=ep.tenant,
        )  # fmt: skip
        return admin_connection(
            target,
            secrets=self.secrets,
            host_keys=self.host_keys,
            initial_key=initial,
            initial_password=password,
            audit=audit,
        )

    def _root_password(self, server: str, server_data: dict[str, Any]):
        """The Hostwinds instance's root password (a ``SecretValue``, registered for masking),
        asked of the API only when the bootstrap needs initial access."""
        from penguinctl import secret_paths
        from penguinctl.providers.hostwinds_client import client_for

        sid = server_data.get("service_id")
        if not sid:
            raise ProviderError(
                f"server {server}: no Hostwinds service id recorded",
                hint="run `penguinctl server sync` or apply the server first",
            )
        with client_for(self.env, self.secrets) as client:
            value = client.root_password(int(sid))
        if value is None:
            raise ProviderError(
                f"server {server}: Hostwinds returned no root password for service {sid}",
                hint="store an admin key the server accepts at "
                f"{secret_paths.server_ssh(self.tenant, server)}, or "
                "reset the root password in the Hostwinds panel",
            )
        return value

    def converge(self, data: dict[str, Any], *, check: bool = False, on_step=None):
        from penguinctl.mailu.install import converge

        with self.connect() as conn:
            return converge(
                conn,
                self.server,
                data,
                self.secrets,
                tenant=self.tenant,
                owner=self.domain_owner,
                check=check,
                on_step=on_step,
            )

    def apply_batch(self, changes: Sequence[Change]) -> list[ChangeResult]:
        results = []
        for change in changes:
            if change.action is Action.DELETE:
                root = (change.before or {}).get("root", "/mailu")
                note = f"forgotten; MailU and its data stay on {self.server} in {root}"
                results.append(ChangeResult(change, None, note))
                continue
            assert change.after is not None
            out = self.converge(change.after)
            did = ", ".join(out.changes()) or "already converged"
            results.append(ChangeResult(change, change.after, did))
        return results
