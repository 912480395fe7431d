"""The backup tables (migration 0004), declared once as SQLModel classes; ``runs`` and
``snapshots`` below are their ``__table__`` for Core statements."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from penguinctl.state.columns import json_field, ts_field


class BackupRun(SQLModel, table=True):
    """One row per backup / prune / verify / restore / state backup."""

    __tablename__ = "backup_runs"
    __table_args__ = (Index("ix_backup_runs_server", "server", "operation", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant: str
    server: str  # "" for the state store
    operation: str
    status: str  # running | ok | failed
    repository: str
    snapshot_id: str | None = None
    actor: str
    stats: dict[str, Any] = json_field()
    error: str | None = None
    started_at: datetime = ts_field()
    finished_at: datetime | None = ts_field(nullable=True)


class BackupSnapshot(SQLModel, table=True):
    __tablename__ = "backup_snapshots"
    __table_args__ = (
        UniqueConstraint("server", "snapshot_id", name="uq_backup_snapshots_server_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant: str
    server: str
    snapshot_id: str
    short_id: str
    repository: str
    taken_at: datetime = ts_field()
    paths: list[str] = json_field(list)
    tags: list[str] = json_field(list)
    stats: dict[str, Any] = json_field()
    # sha256 of a few files taken while the stack was quiesced: `backup verify` restores them
    samples: Any = json_field()
    status: str  # present | forgotten
    run_id: int | None = None
    recorded_at: datetime = ts_field()


runs = BackupRun.__table__
snapshots = BackupSnapshot.__table__
