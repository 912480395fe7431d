"""Leads at a million per campaign (issue 24): the due-lead index becomes partial and the
address index goes.

- ``ix_leads_due`` was ``(campaign_id, status, next_send_at)``; it is now ``(campaign_id,
  next_send_at) WHERE status = 'active'``: the worker reads the leads due now (``next_send_at
  IS NULL``) and then those due by now (``next_send_at <= now``), each an index range read
  with a LIMIT (scheduler.py), whatever the number of leads waiting, finished or stopped.
- ``ix_leads_email`` (address alone) goes: every import paid for a second index on the
  address, and the only readers, a person's export and erasure, read through
  ``uq_leads_campaign_email`` with the campaigns' ids (privacy.py).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status = 'active'")


def upgrade() -> None:
    op.drop_index("ix_leads_email", table_name="leads")
    op.drop_index("ix_leads_due", table_name="leads")
    op.create_index(
        "ix_leads_due",
        "leads",
        ["campaign_id", "next_send_at"],
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("ix_leads_due", table_name="leads")
    op.create_index("ix_leads_due", "leads", ["campaign_id", "status", "next_send_at"])
    op.create_index("ix_leads_email", "leads", ["email"])
