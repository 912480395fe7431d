"""The ``server_rebuilds`` table (migration 0010): one row per ``server rebuild``, its step
journal. A partial unique index allows one ``running`` rebuild per server: a re-run after a
crash resumes that row, never starts a second replacement."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, DateTime, Index
from sqlmodel import Field, SQLModel

from penguinctl.state.columns import JsonType
from penguinctl.state.models import utcnow


class ServerRebuild(SQLModel, table=True):
    __tablename__ = "server_rebuilds"
    __table_args__ = (
        Index(
            "uq_server_rebuilds_running",
            "server",
            unique=True,
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant: str
    server: str = Field(index=True)
    status: str  # running | done | abandoned
    old: dict[str, Any] = Field(sa_column=Column(JsonType, nullable=False))  # recorded data
    replacement: dict[str, Any] = Field(sa_column=Column(JsonType, nullable=False))
    steps: dict[str, Any] = Field(sa_column=Column(JsonType, nullable=False))  # step -> record
    snapshot_id: str | None = None
    actor: str
    error: str | None = None
    started_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
