"""Sender resolution: a campaign sender address -> submission/IMAP endpoints and credentials.

A sender is a recorded ``mailbox`` resource of the campaign's tenant (name = address; data
``{domain, display_name, daily_limit, password}``). Its ``domain`` resource names the ``server``,
whose recorded data gives ``hostname`` and ``mail`` (``submission``/``imap`` endpoints
``{host, port, security}``; missing = ``hostname`` on 587 STARTTLS / 993 TLS).

The password is the mailbox's ``password`` reference (``env:``, ``file:``, ``keystore:``,
``vault:``) resolved through penguinctl/providers/secrets/resolve.py, else field ``password`` of
``mailboxes/<address>`` in the secrets backend. It is read when a connection is opened, never
stored, logged or put in an error message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl.campaigns.smtp import Endpoint
from penguinctl.errors import SecretError
from penguinctl.state.models import ResourceRow


@dataclass(frozen=True)
class Sender:
    tenant: str
    address: str
    display_name: str | None
    daily_limit: int | None
    submission: Endpoint
    imap: Endpoint
    password_ref: str | None
    created_at: datetime | None

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[-1]


def load_senders(
    conn: sa.Connection | Any, tenant: str, addresses: Iterable[str]
) -> tuple[dict[str, Sender], dict[str, str]]:
    """(senders found, {address: why it cannot send}) for the tenant's ``addresses``."""
    table = ResourceRow.__table__
    wanted = sorted({a.strip().lower() for a in addresses})
    rows = conn.execute(
        sa.select(table.c.tenant, table.c.kind, table.c.name, table.c.data, table.c.created_at)
        .where(table.c.kind.in_(("mailbox", "domain", "server")))
        .where(table.c.tenant.in_((tenant, "")))
    ).all()
    by: dict[tuple[str, str], tuple[str, dict[str, Any], datetime | None]] = {}
    for row in rows:
        key = (row.kind, row.name.lower())
        if key not in by or row.tenant == tenant:  # the tenant's own resource wins over ""
            by[key] = (row.tenant, row.data or {}, row.created_at)
    found: dict[str, Sender] = {}
    problems: dict[str, str] = {}
    for address in wanted:
        mb = by.get(("mailbox", address))
        if mb is None or mb[0] != tenant:
            problems[address] = f"mailbox {address} is not recorded for tenant {tenant}"
            continue
        data = mb[1]
        domain_name = str(data.get("domain") or address.rsplit("@", 1)[-1]).lower()
        dom = by.get(("domain", domain_name))
        server = by.get(("server", str((dom or (None, {}, None))[1].get("server", "")).lower()))
        if dom is None or server is None:
            problems[address] = (
                f"mailbox {address}: domain {domain_name} or its server not recorded"
            )
            continue
        sdata = server[1]
        hostname = str(sdata.get("hostname") or "")
        mail = sdata.get("mail") or {}
        try:
            submission = Endpoint.from_data(mail.get("submission"), hostname, 587, "starttls")
            imap = Endpoint.from_data(mail.get("imap"), hostname, 993, "tls")
        except ValueError as exc:
            problems[address] = f"mailbox {address}: server mail endpoints: {exc}"
            continue
        found[address] = Sender(
            tenant=tenant,
            address=address,
            display_name=data.get("display_name"),
            daily_limit=data.get("daily_limit"),
            submission=submission,
            imap=imap,
            password_ref=data.get("password"),
            created_at=mb[2],
        )
    return found, problems


def password_for(sender: Sender, secrets: Any, env: Mapping[str, str] | None = None) -> str | None:
    """The mailbox password (revealed, so it is masked in any output), or None when none is
    stored anywhere (the connection then skips AUTH)."""
    if sender.password_ref:
        from penguinctl.providers.secrets.resolve import resolve

        return resolve(sender.password_ref, secrets=secrets, env=env).reveal()
    if secrets is None:
        return None
    try:
        from penguinctl import secret_paths

        fields = secrets.get(secret_paths.mailbox(sender.tenant, sender.address))
    except SecretError:
        raise
    if not fields or "password" not in fields:
        return None
    return fields["password"].reveal()
