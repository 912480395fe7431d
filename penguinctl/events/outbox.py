"""``emit``: write an event row in the caller's transaction (the transactional outbox).

Call it with the same ``Session`` or ``Connection`` that makes the state change the event
reports, before that transaction commits: the event exists exactly when the change does (a
rolled-back change emits nothing, a committed one cannot lose its event). Delivery happens later,
from the table (``events.relay`` fans out, ``webhooks.delivery`` and ``alerts.digest`` send).

Payloads are small and carry names, ids and counts: never a secret value (strings pass through
the secret masker anyway) and no personal data of a lead beyond ids (``lead_id``, not the
address). The time is the product clock's.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl import clock
from penguinctl.events import catalogue
from penguinctl.events.tables import Event

MAX_PAYLOAD_BYTES = 8192
_EVENTS = Event.__table__


def new_id(prefix: str = "evt") -> str:
    """A random, URL- and header-safe id with no ``.`` (Standard Webhooks): ``evt_<24 hex>``."""
    return f"{prefix}_{secrets.token_hex(12)}"


def _clean(payload: dict[str, Any]) -> dict[str, Any]:
    from penguinctl.masking import mask

    text = mask(json.dumps(payload, default=str, sort_keys=True))
    if len(text) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"event payload of {len(text)} bytes is over {MAX_PAYLOAD_BYTES}")
    return json.loads(text)


def row(
    type: str,
    *,
    tenant: str | None,
    subject: str,
    payload: dict[str, Any],
    at: datetime | None = None,
) -> dict[str, Any]:
    """The column values of one event (checked against the catalogue), for ``emit_many``."""
    catalogue.get(type)
    return {
        "id": new_id(),
        "type": type,
        "tenant": tenant or "",
        "subject": subject[:400],
        "payload": _clean(payload),
        "occurred_at": at or clock.now(),
        "dispatched_at": None,
    }


def emit(
    conn: Any,
    type: str,
    *,
    tenant: str | None,
    subject: str,
    payload: dict[str, Any],
    at: datetime | None = None,
) -> str:
    """Record one event in ``conn``'s transaction (a Session or a Connection); returns its id.
    ``tenant`` None or ``""`` makes it a platform event. Raises ValueError for a type not in the
    catalogue or an oversized payload (a programming error, never user input)."""
    values = row(type, tenant=tenant, subject=subject, payload=payload, at=at)
    conn.execute(sa.insert(_EVENTS).values(**values))
    return values["id"]


def emit_many(conn: Any, rows: list[dict[str, Any]]) -> list[str]:
    """Record many events (each from ``row``) in one executemany INSERT."""
    if rows:
        conn.execute(sa.insert(_EVENTS), rows)
    return [r["id"] for r in rows]
