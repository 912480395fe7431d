"""api_plans: the apply job's heartbeat in the database's clock.

``heartbeat_at`` (a timestamp from the writing process's own clock, judged by the reaping
process's own clock) becomes ``heartbeat``: seconds since the epoch as the database server counts
them, written and judged in SQL like ``job_runs.heartbeat`` (``control.tables.db_epoch``), so the
replicas' clocks need not agree. A plan still queued or applying when the store is upgraded has no
heartbeat: its serve stopped for the upgrade, and the next serve fails it as interrupted.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat", sa.Float(), nullable=True))
        batch_op.drop_column("heartbeat_at")


def downgrade() -> None:
    with op.batch_alter_table("api_plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_column("heartbeat")
