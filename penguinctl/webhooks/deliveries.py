"""Reading and steering deliveries: the delivery log, ``redeliver``, ``webhooks test``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl import clock
from penguinctl.errors import NotFound
from penguinctl.state.columns import aware
from penguinctl.webhooks.tables import WebhookAttempt, WebhookDelivery, WebhookEndpoint

DL = WebhookDelivery.__table__
AT = WebhookAttempt.__table__
EP = WebhookEndpoint.__table__


def _iso(value: datetime | None) -> str | None:
    value = aware(value)
    return value.isoformat(timespec="seconds") if value else None


def list_deliveries(
    engine: Any,
    *,
    endpoint_id: str | None = None,
    tenant: str | None = None,
    status: str | None = None,
    attempts: bool = False,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Newest first. ``tenant`` limits to that tenant's endpoints; ``attempts`` adds each
    delivery's attempts (status, latency, excerpt)."""
    stmt = (
        sa.select(DL, EP.c.tenant.label("endpoint_tenant"), EP.c.url)
        .join(EP, EP.c.id == DL.c.endpoint_id)
        .order_by(DL.c.id.desc())
        .limit(limit)
    )
    if endpoint_id is not None:
        stmt = stmt.where(DL.c.endpoint_id == endpoint_id)
    if tenant is not None:
        stmt = stmt.where(EP.c.tenant == tenant)
    if status is not None:
        stmt = stmt.where(DL.c.status == status)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
        out = [
            {
                "id": r.id,
                "endpoint": r.endpoint_id,
                "event": r.event_id,
                "type": r.event_type,
                "tenant": r.tenant or None,
                "status": r.status,
                "attempts": r.attempts,
                "last_status": r.last_status,
                "last_error": r.last_error,
                "next_attempt_at": _iso(r.next_attempt_at),
                "delivered_at": _iso(r.delivered_at),
                "created_at": _iso(r.created_at),
            }
            for r in rows
        ]
        if attempts and out:
            by_delivery: dict[int, list[dict[str, Any]]] = {}
            for a in conn.execute(
                sa.select(AT).where(AT.c.delivery_id.in_([d["id"] for d in out])).order_by(AT.c.id)
            ):
                by_delivery.setdefault(a.delivery_id, []).append(
                    {
                        "attempt": a.attempt,
                        "at": _iso(a.started_at),
                        "status": a.status_code,
                        "outcome": a.outcome,
                        "latency_ms": a.latency_ms,
                        "error": a.error,
                        "response": a.response_excerpt,
                    }
                )
            for d in out:
                d["attempt_log"] = by_delivery.get(d["id"], [])
    return out


def redeliver(engine: Any, ref: str, *, actor: str, tenant: str | None = None) -> list[int]:
    """Queue again, for one more attempt now: delivery ``ref`` (its number), or every delivery
    of event ``ref`` (``evt_...``). The rest of the retry schedule, if any is left, follows."""
    from penguinctl.state import audit

    cond = DL.c.event_id == ref if ref.startswith("evt_") else None
    if cond is None:
        if not ref.isdecimal():
            raise NotFound(
                f"{ref!r} is neither a delivery number nor an event id (evt_...)",
                hint="`penguinctl webhooks deliveries` lists both",
            )
        cond = DL.c.id == int(ref)
    now = clock.now()
    with engine.begin() as conn:
        stmt = sa.select(DL.c.id, EP.c.tenant).join(EP, EP.c.id == DL.c.endpoint_id).where(cond)
        if tenant is not None:
            stmt = stmt.where(EP.c.tenant == tenant)
        rows = conn.execute(stmt).all()
        if not rows:
            raise NotFound(f"no delivery {ref}", hint="`penguinctl webhooks deliveries` lists them")
        ids = [r.id for r in rows]
        conn.execute(
            sa.update(DL)
            .where(DL.c.id.in_(ids), DL.c.status != "delivering")
            .values(status="pending", next_attempt_at=now, updated_at=now)
        )
        audit.record_many(
            conn,
            [
                {
                    "actor": actor,
                    "tenant": r.tenant,
                    "action": "webhook.redeliver",
                    "resource": f"webhook_delivery/{r.id}",
                    "result": "ok",
                    "details": {"ref": ref},
                }
                for r in rows
            ],
        )
    return ids


def send_test(engine: Any, secrets: Any, endpoint_id: str, *, deliverer: Any) -> dict[str, Any]:
    """A ``webhook.test`` event to this endpoint only, delivered now (recorded like any
    other); returns the delivery with its attempt."""
    from penguinctl.events.outbox import emit
    from penguinctl.events.tables import Event
    from penguinctl.webhooks.endpoints import get

    ep = get(engine, endpoint_id)
    if ep.status != "active":
        from penguinctl.errors import UsageError

        raise UsageError(
            f"webhook endpoint {ep.id} is disabled ({ep.disabled_reason})",
            hint=f"`penguinctl webhooks enable {ep.id}` first",
        )
    now = clock.now()
    with engine.begin() as conn:
        event_id = emit(
            conn,
            "webhook.test",
            tenant=ep.tenant,
            subject=f"webhook/{ep.id}",
            payload={"endpoint": ep.id, "message": "a test event from penguinctl"},
        )
        ev = Event.__table__
        seq = conn.execute(sa.select(ev.c.seq).where(ev.c.id == event_id)).scalar_one()
        conn.execute(sa.update(ev).where(ev.c.seq == seq).values(dispatched_at=now))
        delivery_id = conn.execute(
            sa.insert(DL)
            .values(
                event_seq=seq,
                event_id=event_id,
                event_type="webhook.test",
                tenant=ep.tenant,
                endpoint_id=ep.id,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            .returning(DL.c.id)
        ).scalar_one()
    deliverer.deliver_due(delivery_ids=[delivery_id])
    (row,) = [
        d
        for d in list_deliveries(engine, endpoint_id=ep.id, attempts=True, limit=20)
        if d["id"] == delivery_id
    ]
    return row
