"""api_plans: the serve process running an apply job, and its heartbeat.

A plan queued or applying names the process that runs its job (host, pid, the pid's start time)
and the job refreshes ``heartbeat_at`` while it runs: a serve that starts, and every serve now
and then, fails the jobs whose process is gone (``penguinctl.services.plans.reap``), so a status
URL never says ``applying`` for ever after a crash.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_host", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("owner_pid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("owner_started", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_plans", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("owner_started")
        batch_op.drop_column("owner_pid")
        batch_op.drop_column("owner_host")
