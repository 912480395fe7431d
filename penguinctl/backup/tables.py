"""SQLAlchemy Core views of the backup tables (migration 0004)."""

from __future__ import annotations

import sqlalchemy as sa

from penguinctl.state.columns import JsonType
from penguinctl.state.columns import ts_column as _ts

metadata = sa.MetaData()


runs = sa.Table(
    "backup_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String, nullable=False),
    sa.Column("server", sa.String, nullable=False),
    sa.Column("operation", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("repository", sa.String, nullable=False),
    sa.Column("snapshot_id", sa.String),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("stats", JsonType, nullable=False),
    sa.Column("error", sa.String),
    _ts("started_at"),
    _ts("finished_at", True),
)

snapshots = sa.Table(
    "backup_snapshots",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String, nullable=False),
    sa.Column("server", sa.String, nullable=False),
    sa.Column("snapshot_id", sa.String, nullable=False),
    sa.Column("short_id", sa.String, nullable=False),
    sa.Column("repository", sa.String, nullable=False),
    _ts("taken_at"),
    sa.Column("paths", JsonType, nullable=False),
    sa.Column("tags", JsonType, nullable=False),
    sa.Column("stats", JsonType, nullable=False),
    sa.Column("samples", JsonType, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("run_id", sa.Integer),
    _ts("recorded_at"),
)
