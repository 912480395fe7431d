"""SSH host keys pinned on first contact (tenant-less).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "host_keys",
        sa.Column("host", sa.String, nullable=False),
        sa.Column("port", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("key_type", sa.String, nullable=False),
        sa.Column("key_b64", sa.String, nullable=False),
        sa.Column("fingerprint", sa.String, nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("host", "port", name="pk_host_keys"),
    )


def downgrade() -> None:
    op.drop_table("host_keys")
