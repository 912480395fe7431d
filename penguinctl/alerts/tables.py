"""Alert recipients and their digests (migration 0009), declared once as SQLModel classes.

- ``alert_subscriptions``: an email address that gets a digest at most every
  ``every_minutes``, for one tenant's events (or, ``tenant = ""``, the whole platform's).
- ``alert_items``: one row per (subscription, event), created by the relay; ``digest_id`` is set
  once a digest carried it.
- ``alert_digests``: every digest sent or tried (SMTP failures are kept with their error).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from penguinctl.events.tables import ts_field
from penguinctl.state.columns import JsonType


class AlertSubscription(SQLModel, table=True):
    __tablename__ = "alert_subscriptions"
    __table_args__ = (UniqueConstraint("tenant", "email", name="uq_alert_subscriptions_key"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant: str  # "" for platform recipients (every tenant's events and the platform's)
    email: str
    every_minutes: int = 15
    event_types: list[str] = Field(default_factory=list, sa_column=Column(JsonType, nullable=False))
    last_sent_at: datetime | None = ts_field(nullable=True)
    retry_at: datetime | None = ts_field(nullable=True)  # after a failed SMTP attempt
    created_at: datetime = ts_field()


class AlertItem(SQLModel, table=True):
    __tablename__ = "alert_items"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_seq", name="uq_alert_items_event"),
        Index("ix_alert_items_pending", "subscription_id", "digest_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("alert_subscriptions.id", ondelete="CASCADE"), nullable=False
        )
    )
    event_seq: int = Field(sa_column=Column(Integer, ForeignKey("events.seq"), nullable=False))
    digest_id: int | None = None
    created_at: datetime = ts_field()


class AlertDigest(SQLModel, table=True):
    __tablename__ = "alert_digests"
    __table_args__ = (Index("ix_alert_digests_subscription", "subscription_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("alert_subscriptions.id", ondelete="CASCADE"), nullable=False
        )
    )
    attempted_at: datetime = ts_field()
    status: str  # sent | failed
    items: int = 0
    subject: str = ""
    error: str | None = None
