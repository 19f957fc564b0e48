"""The inbox listing in the order it is read: deliveries indexed on (node_id, state, id).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

A node's inbox is ``WHERE node_id = ? AND state = 'queued' ORDER BY id LIMIT n``, asked at every long-poll
look (each second while a node waits). On (node_id, state) PostgreSQL must sort the node's whole queued
backlog each time — after a recipient was down for days, every look sorts it all; on (node_id, state, id)
it reads the first n in order. (SQLite's indexes end with the rowid, so it was already in order there.)
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_node_state_id", ["node_id", "state", "id"], unique=False)
        batch_op.drop_index("ix_deliveries_node_state")


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_node_state", ["node_id", "state"], unique=False)
        batch_op.drop_index("ix_deliveries_node_state_id")
