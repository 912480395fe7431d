"""Backup runs, snapshots and health-check history (issue 8).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JsonType = sa.JSON().with_variant(JSONB(), "postgresql")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "backup_runs",  # one row per backup / prune / verify / restore / state backup
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("server", sa.String, nullable=False),  # "" for the state store
        sa.Column("operation", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),  # running | ok | failed
        sa.Column("repository", sa.String, nullable=False),
        sa.Column("snapshot_id", sa.String, nullable=True),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("stats", JsonType, nullable=False),
        sa.Column("error", sa.String, nullable=True),
        _ts("started_at"),
        _ts("finished_at", nullable=True),
    )
    op.create_index("ix_backup_runs_server", "backup_runs", ["server", "operation", "started_at"])
    op.create_table(
        "backup_snapshots",
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
        # sha256 of a few files taken while the stack was quiesced: `backup verify` restores
        # them and compares
        sa.Column("samples", JsonType, nullable=False),
        sa.Column("status", sa.String, nullable=False),  # present | forgotten
        sa.Column("run_id", sa.Integer, nullable=True),
        _ts("recorded_at"),
        sa.UniqueConstraint("server", "snapshot_id", name="uq_backup_snapshots_server_id"),
    )
    op.create_table(
        "check_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("targets", JsonType, nullable=False),
        sa.Column("status", sa.String, nullable=False),  # running | ok | warn | fail
        sa.Column("counts", JsonType, nullable=False),
        _ts("started_at"),
        _ts("finished_at", nullable=True),
    )
    op.create_table(
        "check_results",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "run_id",
            sa.Integer,
            sa.ForeignKey("check_runs.id", name="fk_check_results_run", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("target_kind", sa.String, nullable=False),  # server | domain
        sa.Column("target", sa.String, nullable=False),
        sa.Column("check", sa.String, nullable=False),  # e.g. smtp:25, dnsbl:zen.spamhaus.org
        sa.Column("subject", sa.String, nullable=False),  # what was checked (IP, host:port...)
        sa.Column("status", sa.String, nullable=False),  # ok | warn | fail | error
        sa.Column("critical", sa.Boolean, nullable=False),
        sa.Column("detail", sa.String, nullable=False),
        sa.Column("data", JsonType, nullable=False),
        _ts("checked_at"),
    )
    op.create_index("ix_check_results_target", "check_results", ["target", "check", "checked_at"])


def downgrade() -> None:
    op.drop_table("check_results")
    op.drop_table("check_runs")
    op.drop_table("backup_snapshots")
    op.drop_index("ix_backup_runs_server", table_name="backup_runs")
    op.drop_table("backup_runs")
