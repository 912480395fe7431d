"""Webhook endpoints, deliveries and attempts (migration 0009), declared once as SQLModel classes.

- ``webhook_endpoints``: where events go. ``tenant`` is ``""`` for a platform endpoint (every
  event) or a tenant name (that tenant's events only). ``event_types`` filters (empty: all);
  the signing secret lives in the secrets backend, never here.
- ``webhook_deliveries``: one row per (event, endpoint), created by the relay; its status walks
  ``pending -> delivering -> succeeded`` (or back to ``pending`` with ``next_attempt_at`` after a
  failed attempt, ``failed`` once the retry schedule is exhausted). ``delivering`` rows carry a
  lease (``lease_until``): a process killed mid-request leaves one that another picks up after
  the lease, and delivers again with the same ``webhook-id``.
- ``webhook_attempts``: every attempt with its status code, latency and a masked excerpt of the
  response.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from penguinctl.events.tables import ts_field
from penguinctl.state.columns import JsonType

ENDPOINT_STATUSES = ("active", "disabled")
DELIVERY_STATUSES = ("pending", "delivering", "succeeded", "failed")


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_tenant", "tenant"),)

    id: str = Field(primary_key=True)  # ep_<16 hex>
    tenant: str  # "" for a platform endpoint
    url: str
    description: str = ""
    event_types: list[str] = Field(default_factory=list, sa_column=Column(JsonType, nullable=False))
    allow_private: bool = False  # loopback/private/link-local addresses allowed (operator's call)
    legacy_headers: bool = False  # also X-Penguinctl-* headers (`check --notify`, one release)
    source: str = "cli"  # cli | notify | api
    status: str = "active"  # active | disabled
    disabled_reason: str | None = None
    failing_since: datetime | None = ts_field(nullable=True)
    last_success_at: datetime | None = ts_field(nullable=True)
    secret_rotated_at: datetime | None = ts_field(nullable=True)
    created_at: datetime = ts_field()
    updated_at: datetime = ts_field()


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_seq", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_seq: int = Field(sa_column=Column(Integer, ForeignKey("events.seq"), nullable=False))
    event_id: str
    event_type: str
    tenant: str  # the event's tenant ("" platform)
    endpoint_id: str = Field(
        sa_column=Column(
            String, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
        )
    )
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime | None = ts_field(nullable=True)
    lease_until: datetime | None = ts_field(nullable=True)
    claimed_by: str | None = None
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = ts_field(nullable=True)
    created_at: datetime = ts_field()
    updated_at: datetime = ts_field()


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
        )
    )
    endpoint_id: str
    event_id: str
    attempt: int  # 1 for the first
    started_at: datetime = ts_field()
    latency_ms: int = 0
    status_code: int | None = None
    outcome: str  # succeeded | failed
    error: str | None = None  # transport error or refusal (masked)
    response_excerpt: str = ""  # the first bytes of the response body, secrets masked
