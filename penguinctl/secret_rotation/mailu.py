"""A MailU server's own credentials under the rotation contract: every 180 days (product.md 4).

Targets: every recorded ``mailstack`` (MailU installed by penguinctl). The secret is
``servers/<server>/mailu``: ``secret_key``, ``api_token``, ``admin_password``, ``rotated_at``
and, only while a rotation is under way, ``next_secret_key`` / ``next_api_token`` /
``next_admin_password``.

``rotate(item)`` holds the tenant's state lock (so a mailbox rotation, which needs the API,
never runs in the middle) and runs, each step audited (names, never values):

1. ``secret.rotate.prepare``: the three next values are written next to the current ones
   (skipped when they are there already: ``secret.rotate.resume``);
2. ``mailu.admin_password.set``: the admin account's password changes through the API (MailU
   accepts it at once; an absent admin account is noted and skipped);
3. ``mailu.env.rendered``: the stack is converged over SSH with the next values (``mailu.env``
   rewritten, the admin container recreated by ``docker compose up -d``);
4. ``mailu.api_token.live``: the API answers with the next token (the client's retries cover
   the container restart);
5. ``secret.rotate.promote``: the next values become the current ones.

No API downtime for penguinctl: until step 3 MailU runs with the current token; from step 3 on
it runs with the next one, and every MailU client penguinctl builds holds both and moves to the
next one after a refusal (once; MailU rate-limits failed tokens). A crash anywhere leaves the
next values in the secret: the next run resumes with them and converges.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from penguinctl.errors import PenguinError, ProviderError
from penguinctl.secret_rotation.base import ROTATED_AT, DueItem, Rotation, last_rotated

PERIOD = timedelta(days=180)
FIELDS = ("secret_key", "api_token", "admin_password")


class MailuCredentialRotation(Rotation):
    kind: ClassVar[str] = "mailu"
    default_period: ClassVar[timedelta] = PERIOD

    def _stacks(self, name: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        from penguinctl.state import repo
        from penguinctl.state.db import session_scope

        with session_scope(self.ctx.engine) as session:
            rows = repo.list_resources(session, kind="mailstack", name=name)
            return [(r.tenant or "", r.name, dict(r.data or {})) for r in rows
                    if r.status != "pending"]  # fmt: skip

    def candidates(self) -> list[DueItem]:
        from penguinctl.mailu.credentials import secret_path

        return [
            DueItem(
                kind=self.kind,
                target=server,
                tenant=tenant,
                path=secret_path(tenant, server),
                last_rotated=last_rotated(self.ctx.secrets, secret_path(tenant, server)),
                period=self.default_period,
            )
            for tenant, server, _ in self._stacks()
        ]

    def _server_data(self, server: str) -> dict[str, Any]:
        from penguinctl.state import repo
        from penguinctl.state.db import session_scope

        with session_scope(self.ctx.engine) as session:
            rows = repo.list_resources(session, kind="server", name=server)
        if not rows:
            raise ProviderError(f"server {server} is not recorded in the state store")
        return dict(rows[0].data or {})

    def _client(self, server: str, data: dict[str, Any], tokens: Any = None, tenant: str = ""):
        from penguinctl.providers.registry import Providers

        providers = Providers(
            secrets_factory=lambda: self.ctx.secrets,
            dns_configs={},
            env=self.ctx.env,
            server_configs={server: data},
            server_tenants={server: tenant},
        )
        client = providers.get(f"mail:{server}").client
        if tokens is not None:
            client._token = list(tokens)
        return client

    def _provider(self, server: str, data: dict[str, Any], tenant: str):
        from penguinctl.plan.confine import domain_owners
        from penguinctl.providers.mailstack import MailstackProvider
        from penguinctl.remote.hostkeys import StateHostKeyStore

        owners = domain_owners(self.ctx.engine)
        return MailstackProvider(
            f"mailstack:{server}",
            server=server,
            server_data=data,
            secrets=self.ctx.secrets,
            host_keys=StateHostKeyStore(self.ctx.engine, actor=self.ctx.actor),
            env=dict(self.ctx.env),
            tenant=tenant,
            domain_owner=lambda d: owners.get(d, ""),
        )

    def rotate(self, item: DueItem) -> str:
        from penguinctl.mailu.credentials import generate
        from penguinctl.providers.mailu_api import MailuNotFound
        from penguinctl.state.lock import TenantLock

        ctx, server, tenant, path = self.ctx, item.target, item.tenant, item.path
        found = [s for s in self._stacks(server) if s[0] == tenant]
        if not found:
            raise ProviderError(f"server {server} has no MailU recorded (apply it first)")
        stack = found[0][2]
        resource = f"server/{server}"

        def audit(action: str, result: str = "ok", rotated: bool = False, **details: Any) -> None:
            ctx.audit(tenant=tenant, action=action, resource=resource, result=result,
                      details={"path": path, **details},
                      rotated=("mailu", server, path) if rotated else None)  # fmt: skip

        with TenantLock(ctx.engine, [tenant], operation="secrets-rotate", actor=ctx.actor):
            fields = {k: v.reveal() for k, v in (ctx.secrets.get(path) or {}).items()}
            missing = [f for f in FIELDS if not fields.get(f)]
            if missing:
                raise ProviderError(f"{path} lacks {', '.join(missing)}: apply the stack first")
            resumed = all(fields.get(f"next_{f}") for f in FIELDS)
            if resumed:
                audit("secret.rotate.resume", step="next_*")
            else:
                for f in FIELDS:
                    fields[f"next_{f}"] = generate(f)
                ctx.secrets.put(path, fields)
                audit("secret.rotate.prepare", step="next_*")
            data = self._server_data(server)
            client = self._client(server, data, tenant=tenant)
            admin = f"admin@{stack.get('domain')}"
            try:
                client.set_password(admin, fields["next_admin_password"])
                audit("mailu.admin_password.set", account=admin)
            except MailuNotFound:
                audit("mailu.admin_password.set", result="skipped", account=admin,
                      note="no admin account in MailU")  # fmt: skip
            except PenguinError as exc:
                audit("mailu.admin_password.set", result="error", error=exc.message[:300])
                raise
            finally:
                client.close()
            out = self._provider(server, data, tenant).converge(stack)
            audit("mailu.env.rendered", changes=len(out.changes()))
            live = self._client(server, data, tokens=[fields["next_api_token"]], tenant=tenant)
            try:
                live.domains()  # retried through the admin container's restart
            finally:
                live.close()
            audit("mailu.api_token.live")
            for f in FIELDS:
                fields[f] = fields.pop(f"next_{f}")
            fields[ROTATED_AT] = ctx.now().isoformat()
            ctx.secrets.put(path, fields)
            audit("secret.rotate.promote", step="secret_key, api_token, admin_password",
                  rotated=True)  # fmt: skip
        return "secret key, API token and admin password rotated" + (
            " (resumed)" if resumed else ""
        )


__all__ = ["MailuCredentialRotation"]
