"""SQLAlchemy Core views of the check history tables (migration 0004) and of the one column set
of ``campaigns`` (migration 0003) a failed check changes: its status."""

from __future__ import annotations

import sqlalchemy as sa

from penguinctl.state.columns import JsonType
from penguinctl.state.columns import ts_column as _ts

metadata = sa.MetaData()


check_runs = sa.Table(
    "check_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("targets", JsonType, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("counts", JsonType, nullable=False),
    _ts("started_at"),
    _ts("finished_at", True),
)

check_results = sa.Table(
    "check_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("tenant", sa.String, nullable=False),
    sa.Column("target_kind", sa.String, nullable=False),
    sa.Column("target", sa.String, nullable=False),
    sa.Column("check", sa.String, nullable=False),
    sa.Column("subject", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("critical", sa.Boolean, nullable=False),
    sa.Column("detail", sa.String, nullable=False),
    sa.Column("data", JsonType, nullable=False),
    _ts("checked_at"),
)

campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("paused_reason", sa.String),
    sa.Column("spec", JsonType, nullable=False),
    _ts("updated_at"),
)
