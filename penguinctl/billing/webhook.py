"""Stripe's webhook events applied to the invoices (``POST /hooks/stripe``), once per event id.

The event is verified by the caller (``stripe.Webhook.construct_event``). Its id is recorded in
``stripe_events`` in the transaction that applies it, so a redelivered event (Stripe retries for
days) changes nothing the second time. Handled: ``invoice.paid`` (paid; a suspended tenant is
reactivated), ``invoice.payment_failed`` (dunning day 0, unless it is already in dunning),
``invoice.voided`` and ``invoice.marked_uncollectible``. Anything else is recorded as ignored.
``billing sync`` stays the reconciling poll: an event lost on the way is caught there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from penguinctl.billing import dunning
from penguinctl.billing import tables as t
from penguinctl.control.tables import StripeEvent

_E = StripeEvent.__table__


def apply_event(engine: Any, event: dict[str, Any], now: datetime) -> str:
    """Apply one verified event; returns ``applied``, ``ignored`` or ``duplicate``."""
    event_id, kind = str(event["id"]), str(event.get("type", ""))
    obj = (event.get("data") or {}).get("object") or {}
    try:
        with engine.begin() as conn:
            if conn.execute(sa.select(_E.c.id).where(_E.c.id == event_id)).first():
                return "duplicate"
            result, detail = _apply(conn, kind, obj, now)
            conn.execute(
                sa.insert(_E).values(
                    id=event_id, type=kind[:100], received_at=now, result=result, detail=detail
                )
            )
    except sa.exc.IntegrityError:  # the same event delivered twice at once
        return "duplicate"
    return result


def _apply(conn: Any, kind: str, obj: dict[str, Any], now: datetime) -> tuple[str, str | None]:
    if not kind.startswith("invoice.") or not obj.get("id"):
        return "ignored", None
    row = conn.execute(
        sa.select(t.invoices).where(t.invoices.c.stripe_invoice_id == str(obj["id"]))
    ).first()
    if row is None:
        return "ignored", "not an invoice penguinctl pushed"
    inv = dict(row._mapping)
    if kind == "invoice.paid":
        if inv["status"] != "paid":
            dunning.record_paid(conn, inv, now)
        return "applied", inv["number"]
    if kind == "invoice.payment_failed":
        if inv["status"] == "issued":
            dunning.record_failure(conn, inv, now, reason="payment failed (Stripe webhook)")
        return "applied", inv["number"]
    if kind in ("invoice.voided", "invoice.marked_uncollectible"):
        status = "void" if kind == "invoice.voided" else "uncollectible"
        conn.execute(
            sa.update(t.invoices)
            .where(t.invoices.c.id == inv["id"])
            .values(status=status, stripe_status=status, updated_at=now)
        )
        return "applied", inv["number"]
    return "ignored", None
