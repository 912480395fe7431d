"""Initial schema: resources, apply runs, audit events, locks.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JsonType = sa.JSON().with_variant(JSONB(), "postgresql")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("provider", sa.String, nullable=False),
        sa.Column("data", JsonType, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("tenant", "kind", "name", name="uq_resources_key"),
    )
    op.create_index("ix_resources_tenant", "resources", ["tenant"])
    op.create_table(
        "apply_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("operation", sa.String, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("host", sa.String, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("tenants", JsonType, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("plan_checksum", sa.String, nullable=True),
        _ts("started_at"),
        _ts("finished_at", nullable=True),
        sa.Column("summary", JsonType, nullable=False),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True),
        _ts("ts"),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("resource", sa.String, nullable=False),
        sa.Column("result", sa.String, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("details", JsonType, nullable=False),
    )
    op.create_index("ix_audit_events_ts", "audit_events", ["ts"])
    op.create_index("ix_audit_events_tenant", "audit_events", ["tenant"])
    op.create_index("ix_audit_events_resource", "audit_events", ["resource"])
    op.create_table(
        "locks",
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("lock_id", sa.String, nullable=False),
        sa.Column("operation", sa.String, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("host", sa.String, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        _ts("acquired_at"),
    )
    op.create_index("ix_locks_lock_id", "locks", ["lock_id"])


def downgrade() -> None:
    for table in ("locks", "audit_events", "apply_runs", "resources"):
        op.drop_table(table)
