"""Server rebuilds (issue 23): the step journal of `server rebuild`.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    op.create_table(
        "server_rebuilds",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("server", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("old", JSON, nullable=False),
        sa.Column("replacement", JSON, nullable=False),
        sa.Column("steps", JSON, nullable=False),
        sa.Column("snapshot_id", sa.String, nullable=True),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("error", sa.String, nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_server_rebuilds_server", "server_rebuilds", ["server"])
    op.create_index(
        "uq_server_rebuilds_running",
        "server_rebuilds",
        ["server"],
        unique=True,
        sqlite_where=RUNNING,
        postgresql_where=RUNNING,
    )


def downgrade() -> None:
    op.drop_table("server_rebuilds")
