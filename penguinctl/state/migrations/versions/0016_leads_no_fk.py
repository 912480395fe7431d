"""leads: no foreign key to campaigns (issue 24).

``fk_leads_campaign`` (``leads.campaign_id -> campaigns.id``, ON DELETE CASCADE) goes. On
PostgreSQL its per-row trigger was most of what ``leads import`` paid over a bare ``COPY``
(copying a million rows into ``leads``: 5.85 s with its indexes and the foreign key, 3.48 s with
the indexes alone), and it only repeated what the import guarantees once: the import is the only
code that adds leads, and it resolves the stored campaign first and holds that campaign's row
locked for the whole import (``FOR UPDATE`` on PostgreSQL; SQLite has one writer;
``lead_writer.writer_for``). No code deletes a campaign, so the cascade never ran: code that comes
to delete one must delete the campaign's leads itself, in the same transaction (models.Lead).

The other foreign keys to ``campaigns`` (``campaign_sends``, ``inbound_events``) stay. On SQLite
the table is rebuilt (batch mode): ``ix_leads_due`` keeps its ``WHERE status = 'active'``
(tests/test_leads_bulk.py checks the index as SQLite stores it).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_constraint("fk_leads_campaign", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_leads_campaign", "campaigns", ["campaign_id"], ["id"], ondelete="CASCADE"
        )
