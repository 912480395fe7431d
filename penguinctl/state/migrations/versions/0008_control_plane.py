"""Control plane (issue 19): recorded spec documents, job series and runs, the scheduler
leader's lease, per-subject due times, processed Stripe webhook events.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "spec_documents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("sha256", sa.String, nullable=False),
        sa.Column("document", JSON, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("actor", sa.String, nullable=False),
        _ts("recorded_at"),
        sa.UniqueConstraint("tenant", "kind", "name", name="uq_spec_documents_key"),
    )
    op.create_index("ix_spec_documents_tenant", "spec_documents", ["tenant"])
    op.create_table(
        "job_series",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job", sa.String, nullable=False),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("target", sa.String, nullable=False),
        sa.Column("schedule", sa.String, nullable=False),
        sa.Column("source", sa.String, nullable=False),
        _ts("next_run_at", True),
        _ts("last_scheduled_for", True),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        _ts("updated_at"),
        sa.UniqueConstraint("job", "tenant", "target", name="uq_job_series_key"),
    )
    op.create_index("ix_job_series_due", "job_series", ["next_run_at"])
    op.create_table(
        "job_pauses",
        sa.Column("job", sa.String, primary_key=True),
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("actor", sa.String, nullable=False),
        _ts("paused_at"),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job", sa.String, nullable=False),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("target", sa.String, nullable=False),
        sa.Column("trigger", sa.String, nullable=False),
        _ts("scheduled_for"),
        _ts("started_at"),
        _ts("finished_at", True),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("summary", JSON, nullable=False),
        sa.Column("error", sa.String, nullable=True),
        sa.Column("host", sa.String, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("owner", sa.String, nullable=False),
        sa.Column("lease_token", sa.Integer, nullable=True),
        sa.Column("heartbeat", sa.Float, nullable=False),
        sa.Column("duration_seconds", sa.Float, nullable=True),
    )
    op.create_index("ix_job_runs_series", "job_runs", ["job", "tenant", "target", "id"])
    op.create_index(
        "uq_job_runs_running",
        "job_runs",
        ["job", "tenant", "target"],
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_index(
        "uq_job_runs_tick",
        "job_runs",
        ["job", "tenant", "target", "scheduled_for"],
        unique=True,
        sqlite_where=sa.text("trigger != 'manual' AND status != 'interrupted'"),
        postgresql_where=sa.text("trigger != 'manual' AND status != 'interrupted'"),
    )
    op.create_table(
        "control_leases",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("holder", sa.String, nullable=False),
        sa.Column("host", sa.String, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("token", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("elected_at", sa.Float, nullable=False),
    )
    op.create_table(
        "job_due",
        sa.Column("job", sa.String, primary_key=True),
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("subject", sa.String, primary_key=True),
        _ts("due_at"),
    )
    op.create_index("ix_job_due_when", "job_due", ["job", "due_at"])
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("type", sa.String, nullable=False),
        _ts("received_at"),
        sa.Column("result", sa.String, nullable=False),
        sa.Column("detail", sa.String, nullable=True),
    )


def downgrade() -> None:
    for name in (
        "stripe_events",
        "job_due",
        "control_leases",
        "job_runs",
        "job_pauses",
        "job_series",
        "spec_documents",
    ):
        op.drop_table(name)
