"""The outbox relay: fan new events out to webhook deliveries and alert items, exactly once.

One transaction takes the oldest events not yet dispatched (on PostgreSQL ``FOR UPDATE SKIP
LOCKED``, so several ``serve`` replicas split them and never both take one; SQLite has one
writer at a time), inserts a ``webhook_deliveries`` row for every active endpoint whose tenant
and filter match and an ``alert_items`` row for every alert recipient who wants it, and marks
the events dispatched. A crash before the commit leaves everything as it was; after it, the
rows exist. Events are read by ``dispatched_at IS NULL`` (a partial index), not by sequence
number, so an event whose transaction commits late is never skipped.

Who sees what: a tenant's endpoint or recipient gets that tenant's events only; the platform's
(``tenant = ""``) get every event, platform events included.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl.alerts.tables import AlertItem, AlertSubscription
from penguinctl.events import catalogue
from penguinctl.events.tables import Event
from penguinctl.webhooks.tables import WebhookDelivery, WebhookEndpoint

EV = Event.__table__
EP = WebhookEndpoint.__table__
DL = WebhookDelivery.__table__
SUB = AlertSubscription.__table__
ITEM = AlertItem.__table__
BATCH = 500


def write_lock(conn: Any) -> None:
    """On SQLite, take the database's write lock before reading what this transaction will
    change (a no-op UPDATE begins the write transaction), so a second process waits instead of
    reading the same rows: SQLite's stand-in for ``FOR UPDATE SKIP LOCKED``."""
    if conn.dialect.name == "sqlite":
        conn.execute(sa.text("UPDATE events SET seq = seq WHERE 0"))


def _wants(owner_tenant: str, types: list[str], event_tenant: str, event_type: str) -> bool:
    return (owner_tenant in ("", event_tenant)) and catalogue.matches(types, event_type)


def relay(engine: Any, *, now: datetime, limit: int = BATCH) -> int:
    """Dispatch up to ``limit`` events; returns how many."""
    with engine.begin() as conn:
        write_lock(conn)
        stmt = (
            sa.select(EV.c.seq, EV.c.id, EV.c.type, EV.c.tenant)
            .where(EV.c.dispatched_at.is_(None))
            .order_by(EV.c.seq)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        events = conn.execute(stmt).all()
        if not events:
            return 0
        endpoints = conn.execute(
            sa.select(EP.c.id, EP.c.tenant, EP.c.event_types).where(EP.c.status == "active")
        ).all()
        subscriptions = conn.execute(sa.select(SUB.c.id, SUB.c.tenant, SUB.c.event_types)).all()
        deliveries: list[dict[str, Any]] = []
        items: list[dict[str, Any]] = []
        for ev in events:
            for ep in endpoints:
                if ev.type != "webhook.test" and _wants(
                    ep.tenant, ep.event_types or [], ev.tenant, ev.type
                ):
                    deliveries.append(
                        {
                            "event_seq": ev.seq,
                            "event_id": ev.id,
                            "event_type": ev.type,
                            "tenant": ev.tenant,
                            "endpoint_id": ep.id,
                            "status": "pending",
                            "attempts": 0,
                            "next_attempt_at": now,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
            for sub in subscriptions:
                types = sub.event_types or list(catalogue.ALERT_TYPES)
                if _wants(sub.tenant, types, ev.tenant, ev.type):
                    items.append(
                        {"subscription_id": sub.id, "event_seq": ev.seq, "created_at": now}
                    )
        if deliveries:
            conn.execute(sa.insert(DL), deliveries)
        if items:
            conn.execute(sa.insert(ITEM), items)
        conn.execute(
            sa.update(EV).where(EV.c.seq.in_([ev.seq for ev in events])).values(dispatched_at=now)
        )
        return len(events)
