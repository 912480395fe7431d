"""Mailbox (SMTP/IMAP) passwords under the rotation contract: every 180 days (product.md 4).

Targets: every recorded ``mailbox`` on a MailU server (provider ``mail:<server>``) whose password
penguinctl generated, i.e. the spec gives no ``password`` reference (a referenced password
belongs to whoever owns the reference: rotate it there, then re-apply). The secret is
``mailboxes/<address>``: ``password`` (current), ``rotated_at`` (ISO 8601 UTC, the time of the
last rotation, or of the first generation) and, only while a rotation is under way,
``next_password``.

``rotate(item)`` holds the tenant's state lock and runs three steps, each audited (names and
paths, never a value):

1. ``secret.rotate.prepare``: a new password is written to the secret as ``next_password``
   (the current ``password`` stays). Skipped when a ``next_password`` is already there: an
   earlier run stopped after this step, and that password is the one to finish with
   (``secret.rotate.resume``).
2. ``mailbox.password.set``: MailU's API sets the user's password to ``next_password``
   (``PATCH /user/<address>``: idempotent, so repeating it after a crash is harmless).
3. ``secret.rotate.promote``: ``next_password`` becomes ``password``, with ``rotated_at``.

A crash after 1 or after 2 leaves ``next_password`` in the secret; the next run resumes at 2
with that same password and converges. A crash after 3 is a finished rotation. Between 2 and 3
MailU already wants the new password while ``password`` still holds the old one: a reader that
fails to log in with ``password`` may try ``next_password``.

A mailbox missing in MailU (deleted by hand) is not rotated: ``apply`` re-creates it first.
MailU's API is reached exactly as ``apply`` reaches it (``mail.api_url`` of the recorded
server, token from ``servers/<server>/mailu``); never over SSH.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from penguinctl.errors import PenguinError, ProviderError
from penguinctl.secret_rotation.base import ROTATED_AT, DueItem, Rotation, last_rotated

NEXT = "next_password"
PASSWORD = "password"
PERIOD = timedelta(days=180)


class MailboxPasswordRotation(Rotation):
    kind: ClassVar[str] = "mailbox"
    default_period: ClassVar[timedelta] = PERIOD

    # -- targets --------------------------------------------------------------------------------
    def _mailboxes(self, name: str | None = None) -> list[Any]:
        from penguinctl.state import repo
        from penguinctl.state.db import session_scope
        from penguinctl.state.journal import PENDING

        with session_scope(self.ctx.engine) as session:
            rows = repo.list_resources(session, kind="mailbox", name=name)
            return [
                (r.tenant, r.name, r.provider, dict(r.data or {}))
                for r in rows
                if r.status != PENDING
            ]

    def candidates(self) -> list[DueItem]:
        from penguinctl.providers.mailu import mailbox_secret_path

        items = []
        for tenant, address, provider, data in self._mailboxes():
            if not provider.startswith("mail:") or data.get("password"):
                continue  # external server (not ours to change), or a spec reference
            path = mailbox_secret_path(tenant, address)
            items.append(
                DueItem(
                    kind=self.kind,
                    target=address,
                    tenant=tenant,
                    path=path,
                    last_rotated=last_rotated(self.ctx.secrets, path),
                    period=self.default_period,
                )
            )
        return items

    # -- one rotation ---------------------------------------------------------------------------
    def _client(self, server: str):
        from penguinctl.providers.registry import Providers
        from penguinctl.state import repo
        from penguinctl.state.db import session_scope

        with session_scope(self.ctx.engine) as session:
            rows = repo.list_resources(session, kind="server", name=server)
            data = dict(rows[0].data or {}) if rows else None
            owner = rows[0].tenant if rows else ""
        if data is None:
            raise ProviderError(
                f"server {server} is not recorded in the state store",
                hint="apply the spec that defines it first",
            )
        providers = Providers(
            secrets_factory=lambda: self.ctx.secrets,
            dns_configs={},
            env=self.ctx.env,
            server_configs={server: data},
            server_tenants={server: owner},
        )
        return providers.get(f"mail:{server}").client

    def rotate(self, item: DueItem) -> str:
        from penguinctl.providers.mailu import new_password
        from penguinctl.providers.mailu_api import MailuNotFound
        from penguinctl.state.lock import TenantLock

        ctx = self.ctx
        address, tenant, path = item.target, item.tenant, item.path
        found = [m for m in self._mailboxes(address) if m[0] == tenant]
        if not found:
            raise ProviderError(
                f"mailbox {address} is not recorded in the state store",
                hint="apply the spec that defines it first",
            )
        _, _, provider, data = found[0]
        if not provider.startswith("mail:"):
            raise ProviderError(f"mailbox {address} is not on a MailU server penguinctl manages")
        if data.get("password"):
            raise ProviderError(
                f"mailbox {address}: its password comes from the spec ({data['password']})",
                hint="change it where that reference points, then run apply",
            )
        server = provider.split(":", 1)[1]
        resource = f"mailbox/{address}"

        def audit(action: str, result: str = "ok", rotated: bool = False, **details: Any) -> None:
            ctx.audit(
                tenant=tenant,
                action=action,
                resource=resource,
                result=result,
                details={"path": path, "server": server, **details},
                rotated=("mailbox", address, path) if rotated else None,
            )

        with TenantLock(ctx.engine, [tenant], operation="secrets-rotate", actor=ctx.actor):
            client = self._client(server)
            stored = ctx.secrets.get(path) or {}
            fields = {k: v.reveal() for k, v in stored.items()}
            resumed = bool(fields.get(NEXT))
            if resumed:
                audit("secret.rotate.resume", step=NEXT)
            else:
                fields[NEXT] = new_password()
                ctx.secrets.put(path, fields)
                audit("secret.rotate.prepare", step=NEXT)
            try:
                client.set_password(address, fields[NEXT])
            except MailuNotFound:
                audit("mailbox.password.set", result="error", error="mailbox not in MailU")
                raise ProviderError(
                    f"mailbox {address} does not exist in MailU on {server}",
                    hint="run apply (it re-creates the mailbox), then rotate again",
                ) from None
            except PenguinError as exc:
                audit("mailbox.password.set", result="error", error=exc.message[:300])
                raise
            audit("mailbox.password.set")
            fields[PASSWORD] = fields.pop(NEXT)
            fields[ROTATED_AT] = ctx.now().isoformat()
            ctx.secrets.put(path, fields)
            audit("secret.rotate.promote", step=PASSWORD, rotated=True)
        where = f"MailU on {server}"
        return f"new password set in {where} and stored" + (" (resumed)" if resumed else "")


__all__ = ["MailboxPasswordRotation"]
