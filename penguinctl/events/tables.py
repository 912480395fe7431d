"""The event outbox (migration 0009), declared once as a SQLModel class.

``events``: one row per thing that happened, written by ``outbox.emit`` in the same transaction
as the state change it reports. ``seq`` orders them; ``id`` (``evt_...``) is the stable public
id (the ``webhook-id`` of every delivery, so receivers de-duplicate on it). ``dispatched_at`` is
set by the relay once the event has been fanned out to webhook endpoints and alert recipients;
a partial index keeps the not-yet-dispatched rows cheap to find however long the history grows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from penguinctl.state.columns import JsonType, ts_field

UNDISPATCHED = sa.text("dispatched_at IS NULL")


class Event(SQLModel, table=True):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("id", name="uq_events_id"),
        Index("ix_events_tenant_time", "tenant", "occurred_at"),
        Index("ix_events_type_time", "type", "occurred_at"),
        Index(
            "ix_events_undispatched",
            "seq",
            postgresql_where=UNDISPATCHED,
            sqlite_where=UNDISPATCHED,
        ),
    )

    seq: int | None = Field(default=None, primary_key=True)
    id: str  # evt_<24 hex>: stable, never reused, no "." (Standard Webhooks)
    type: str  # a catalogue name, e.g. check.failed
    tenant: str  # "" for platform events
    subject: str  # what it is about: domain/acme-mail.example, campaign/q4, server/mx1 ...
    payload: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JsonType, nullable=False)
    )
    occurred_at: datetime = ts_field()
    dispatched_at: datetime | None = ts_field(nullable=True)
