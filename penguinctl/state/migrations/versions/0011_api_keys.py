"""API keys (issue 21): ``api_keys``, one row per key (public prefix, hashed secret, role,
tenant, expiry, last use, rotation overlap, revocation); ``api_plans``, plans made through the
API with their documents, checksum and apply status.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("prefix", sa.String, primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("role", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("secret_hash", sa.String, nullable=False),
        sa.Column("previous_hash", sa.String, nullable=True),
        _ts("previous_valid_until"),
        sa.Column("created_by", sa.String, nullable=False),
        _ts("created_at", nullable=False),
        _ts("expires_at"),
        _ts("last_used_at"),
        _ts("rotated_at"),
        _ts("revoked_at"),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant"])
    json = sa.JSON().with_variant(JSONB(), "postgresql")
    op.create_table(
        "api_plans",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("tenants", json, nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
        sa.Column("operation", sa.String, nullable=False),
        sa.Column("targets", json, nullable=False),
        sa.Column("documents", json, nullable=False),
        sa.Column("checksum", sa.String, nullable=False),
        sa.Column("changes", sa.Integer, nullable=False),
        sa.Column("plan", json, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        _ts("created_at", nullable=False),
        sa.Column("applied_by", sa.String, nullable=True),
        _ts("started_at"),
        _ts("finished_at"),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("result", json, nullable=False),
    )
    op.create_index("ix_api_plans_tenant", "api_plans", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_api_plans_tenant", table_name="api_plans")
    op.drop_table("api_plans")
    op.drop_index("ix_api_keys_tenant", table_name="api_keys")
    op.drop_table("api_keys")
