"""SQLModel tables. Schema changes go through Alembic migrations (migrations/versions/)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from penguinctl import clock
from penguinctl.state.columns import JsonType


def utcnow() -> datetime:
    """Now, from the product's one clock (``penguinctl.clock``)."""
    return clock.now()


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), **kw))


class ResourceRow(SQLModel, table=True):
    __tablename__ = "resources"
    __table_args__ = (
        UniqueConstraint("tenant", "kind", "name", name="uq_resources_key"),
        Index("ix_resources_kind_name", "kind", "name", "tenant"),  # the dashboard's pages
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(index=True)
    kind: str
    name: str
    provider: str
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JsonType, nullable=False))
    status: str = "applied"
    run_id: int | None = None
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class ApplyRun(SQLModel, table=True):
    __tablename__ = "apply_runs"

    id: int | None = Field(default=None, primary_key=True)
    operation: str
    actor: str
    host: str
    pid: int
    tenants: list[str] = Field(default_factory=list, sa_column=Column(JsonType, nullable=False))
    status: str = "running"
    plan_checksum: str | None = None
    started_at: datetime = _ts(nullable=False)
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    summary: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JsonType, nullable=False)
    )


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = _ts(nullable=False, index=True)
    actor: str
    tenant: str = Field(index=True)
    action: str
    resource: str = Field(index=True)
    result: str
    run_id: int | None = None
    details: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JsonType, nullable=False)
    )


class LockRow(SQLModel, table=True):
    __tablename__ = "locks"

    tenant: str = Field(primary_key=True)
    lock_id: str = Field(index=True)
    operation: str
    actor: str
    host: str
    pid: int
    # when the holder process started (epoch seconds, as the OS reports it): with host and pid
    # it tells a live holder from a recycled pid (penguinctl.procs.holder_alive)
    pid_started: float | None = None
    acquired_at: datetime = _ts(nullable=False)


class HostKeyRow(SQLModel, table=True):
    """An SSH host key pinned on first contact with ``host:port`` (not per tenant: a server's
    key is a fact about the machine). Replaced only after a deliberate ``forget``."""

    __tablename__ = "host_keys"

    host: str = Field(primary_key=True)
    port: int = Field(primary_key=True)
    key_type: str
    key_b64: str
    fingerprint: str
    first_seen: datetime = _ts(nullable=False)
