"""Webhook endpoints: add, list, remove, enable, rotate their secret; read the secrets that sign.

An endpoint belongs to a tenant (it receives only that tenant's events) or to the platform
(``tenant=""``: every event). Its ``whsec_`` secret is kept in the secrets backend under its
owner, ``tenants/<tenant>/webhooks/<id>`` or ``platform/webhooks/<id>`` (fields ``secret``, and
during a rotation's overlap ``previous`` and ``previous_until``); the state store holds the URL
and filters only. Every change is audited (never the secret).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from penguinctl import clock
from penguinctl.errors import NotFound, UsageError
from penguinctl.state.columns import aware
from penguinctl.webhooks import signing
from penguinctl.webhooks.client import Refused, Resolver, check_url, resolve
from penguinctl.webhooks.tables import WebhookEndpoint

E = WebhookEndpoint.__table__
DEFAULT_OVERLAP = timedelta(hours=24)


def secret_path(tenant: str, endpoint_id: str) -> str:
    """Where an endpoint's signing secret lives (product.md's secrets layout)."""
    from penguinctl import secret_paths

    return secret_paths.webhook(tenant, endpoint_id)


@dataclass
class Endpoint:
    id: str
    tenant: str
    url: str
    description: str
    event_types: list[str]
    allow_private: bool
    legacy_headers: bool
    source: str
    status: str
    disabled_reason: str | None
    failing_since: datetime | None
    last_success_at: datetime | None
    secret_rotated_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> Endpoint:
        m = row._mapping
        return cls(
            **{
                k: (aware(m[k]) if isinstance(m[k], datetime) else m[k])
                for k in cls.__dataclass_fields__
            }
        )

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for k, v in out.items():
            if isinstance(v, datetime):
                out[k] = v.isoformat(timespec="seconds")
        out["tenant"] = self.tenant or None
        return out


def _audit(conn, actor: str, tenant: str, action: str, endpoint_id: str, **details: Any) -> None:
    from penguinctl.state import audit

    audit.record_many(
        conn,
        [
            {
                "actor": actor,
                "tenant": tenant,
                "action": action,
                "resource": f"webhook/{endpoint_id}",
                "result": "ok",
                "details": details,
            }
        ],
    )


def add(
    engine: Any,
    secrets: Any,
    url: str,
    *,
    tenant: str = "",
    event_types: list[str] | None = None,
    description: str = "",
    allow_private: bool = False,
    actor: str,
    source: str = "cli",
    secret: str | None = None,
    legacy_headers: bool = False,
    resolver: Resolver = resolve,
) -> tuple[Endpoint, str]:
    """Check and record a new endpoint; returns it and its secret (shown once)."""
    from penguinctl.events.outbox import new_id
    from penguinctl.events.query import event_types as check_types
    from penguinctl.events.query import require_tenant

    types = check_types(event_types)
    try:
        check_url(url, allow_private=allow_private, resolver=resolver)
    except Refused as exc:
        raise UsageError(
            f"webhook {url[:200]}: {exc}",
            hint="an endpoint on a private network needs --allow-private",
        ) from None
    if tenant:
        require_tenant(engine, tenant)
    endpoint_id = new_id("ep")[:19]  # ep_ + 16 hex
    secret = secret or signing.new_secret()
    secrets.put(secret_path(tenant, endpoint_id), {"secret": secret})  # before the row
    now = clock.now()
    with engine.begin() as conn:
        conn.execute(
            sa.insert(E).values(
                id=endpoint_id,
                tenant=tenant,
                url=url,
                description=description[:200],
                event_types=types,
                allow_private=allow_private,
                legacy_headers=legacy_headers,
                source=source,
                status="active",
                created_at=now,
                updated_at=now,
            )
        )
        _audit(conn, actor, tenant, "webhook.add", endpoint_id, url=url, events=types)
    return get(engine, endpoint_id), secret


def get(engine: Any, endpoint_id: str, *, tenant: str | None = None) -> Endpoint:
    """The endpoint; NotFound when it does not exist or (``tenant`` given) is not that
    tenant's."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(E).where(E.c.id == endpoint_id)).first()
    if row is None or (tenant is not None and row.tenant != tenant):
        raise NotFound(
            f"no webhook endpoint {endpoint_id}",
            hint="`penguinctl webhooks list` shows the endpoints and their ids",
        )
    return Endpoint.of(row)


def list_endpoints(engine: Any, *, tenant: str | None = None) -> list[Endpoint]:
    stmt = sa.select(E).order_by(E.c.tenant, E.c.created_at, E.c.id)
    if tenant is not None:
        stmt = stmt.where(E.c.tenant == tenant)
    with engine.connect() as conn:
        return [Endpoint.of(r) for r in conn.execute(stmt)]


def find_by_url(engine: Any, url: str, *, tenant: str, source: str) -> Endpoint | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(E).where(E.c.url == url, E.c.tenant == tenant, E.c.source == source)
        ).first()
    return Endpoint.of(row) if row is not None else None


def remove(
    engine: Any, secrets: Any, endpoint_id: str, *, actor: str, tenant: str | None = None
) -> Endpoint:
    """Delete the endpoint (its deliveries and attempts go with it) and its secret."""
    ep = get(engine, endpoint_id, tenant=tenant)
    with engine.begin() as conn:
        conn.execute(sa.delete(E).where(E.c.id == ep.id))
        _audit(conn, actor, ep.tenant, "webhook.remove", ep.id, url=ep.url)
    secrets.delete(secret_path(ep.tenant, ep.id))
    return ep


def set_status(
    engine: Any,
    endpoint_id: str,
    status: str,
    *,
    actor: str,
    reason: str | None = None,
    tenant: str | None = None,
) -> Endpoint:
    """Enable (``active``: failing state forgotten) or disable an endpoint by hand."""
    ep = get(engine, endpoint_id, tenant=tenant)
    with engine.begin() as conn:
        conn.execute(
            sa.update(E)
            .where(E.c.id == ep.id)
            .values(
                status=status,
                disabled_reason=reason if status == "disabled" else None,
                failing_since=None if status == "active" else ep.failing_since,
                updated_at=clock.now(),
            )
        )
        action = "webhook.enable" if status == "active" else "webhook.disable"
        _audit(conn, actor, ep.tenant, action, ep.id, reason=reason)
    return get(engine, ep.id)


def rotate_secret(
    engine: Any,
    secrets: Any,
    endpoint_id: str,
    *,
    actor: str,
    overlap: timedelta = DEFAULT_OVERLAP,
    tenant: str | None = None,
) -> tuple[Endpoint, str]:
    """A new secret signs from now on; the old one also signs until ``now + overlap``."""
    ep = get(engine, endpoint_id, tenant=tenant)
    path = secret_path(ep.tenant, ep.id)
    current = (secrets.get(path) or {}).get("secret")
    now = clock.now()
    fields = {"secret": signing.new_secret()}
    if current is not None and overlap > timedelta(0):
        fields["previous"] = current.reveal()
        fields["previous_until"] = (now + overlap).isoformat(timespec="seconds")
    secrets.put(path, fields)
    with engine.begin() as conn:
        conn.execute(
            sa.update(E).where(E.c.id == ep.id).values(secret_rotated_at=now, updated_at=now)
        )
        _audit(
            conn,
            actor,
            ep.tenant,
            "webhook.rotate-secret",
            ep.id,
            overlap_seconds=int(overlap.total_seconds()),
        )
    return get(engine, ep.id), fields["secret"]


def active_secrets(fields: dict[str, str], now: datetime) -> list[str]:
    """Of a secret's fields, those that sign now: the current secret, and the previous one
    during a rotation's overlap."""
    out = [fields["secret"]] if "secret" in fields else []
    until = fields.get("previous_until")
    if "previous" in fields and until and now < clock.parse_instant(until):
        out.append(fields["previous"])
    return out


def signing_secrets(secrets: Any, tenant: str, endpoint_id: str, now: datetime) -> list[str]:
    """The secrets that sign a delivery to the endpoint now (empty when the secret is missing:
    the delivery then fails, visibly)."""
    fields = secrets.get(secret_path(tenant, endpoint_id)) or {}
    return active_secrets({k: v.reveal() for k, v in fields.items()}, now)
