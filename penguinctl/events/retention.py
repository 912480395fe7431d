"""Pruning old events with their delivery log (``events prune --older-than 90d``).

An event older than the cutoff goes with its finished deliveries (succeeded or failed), their
attempts and its mailed alert items. An event something still waits on (a pending delivery, an
unsent alert item) stays until that is done. Chunks of ``CHUNK`` events, one transaction each.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl.alerts.tables import AlertItem
from penguinctl.events.tables import Event
from penguinctl.webhooks.tables import WebhookAttempt, WebhookDelivery

EV = Event.__table__
DL = WebhookDelivery.__table__
AT = WebhookAttempt.__table__
ITEM = AlertItem.__table__
CHUNK = 1000


def prune(engine: Any, *, before: datetime, actor: str) -> dict[str, int]:
    from penguinctl.state import audit

    counts = {"events": 0, "deliveries": 0, "attempts": 0, "alert_items": 0}
    waiting = sa.or_(
        sa.exists().where(DL.c.event_seq == EV.c.seq, DL.c.status.in_(("pending", "delivering"))),
        sa.exists().where(ITEM.c.event_seq == EV.c.seq, ITEM.c.digest_id.is_(None)),
    )
    while True:
        with engine.begin() as conn:
            seqs = list(
                conn.execute(
                    sa.select(EV.c.seq)
                    .where(EV.c.occurred_at < before, EV.c.dispatched_at.is_not(None), ~waiting)
                    .order_by(EV.c.seq)
                    .limit(CHUNK)
                ).scalars()
            )
            if not seqs:
                break
            deliveries = sa.select(DL.c.id).where(DL.c.event_seq.in_(seqs))
            counts["attempts"] += conn.execute(
                sa.delete(AT).where(AT.c.delivery_id.in_(deliveries))
            ).rowcount
            counts["deliveries"] += conn.execute(
                sa.delete(DL).where(DL.c.event_seq.in_(seqs))
            ).rowcount
            counts["alert_items"] += conn.execute(
                sa.delete(ITEM).where(ITEM.c.event_seq.in_(seqs))
            ).rowcount
            counts["events"] += conn.execute(sa.delete(EV).where(EV.c.seq.in_(seqs))).rowcount
    with engine.begin() as conn:
        audit.record_many(
            conn,
            [
                {
                    "actor": actor,
                    "tenant": "",
                    "action": "events.prune",
                    "resource": "events",
                    "result": "ok",
                    "details": {"before": before.isoformat(), **counts},
                }
            ],
        )
    return counts
