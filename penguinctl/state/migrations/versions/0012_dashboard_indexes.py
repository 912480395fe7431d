"""Dashboard indexes (issue 22): ``resources (kind, name, tenant)`` so the Domains page reads a
page of 10,000 domains in name order, and counts them, from an index instead of sorting the
table; ``campaign_sends (campaign_id, status, sent_at)`` for a campaign's counts and sends per day
when many campaigns share the ledger.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_resources_kind_name", "resources", ["kind", "name", "tenant"])
    op.create_index("ix_sends_campaign", "campaign_sends", ["campaign_id", "status", "sent_at"])


def downgrade() -> None:
    op.drop_index("ix_sends_campaign", table_name="campaign_sends")
    op.drop_index("ix_resources_kind_name", table_name="resources")
