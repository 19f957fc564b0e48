"""What became of a message after the first hop: the sender's record of the axis's answer, the axis's expiry.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

A sender's outbox row keeps what its axis said became of a delivered copy no recipient answered (``fate``,
per recipient), when it asked, and when nothing more could change; (state, done_at) finds the copies to ask
about. On an axis, (state, created_at) lets the periodic sweep find the deliveries queued past the maximum age
without reading every delivery ever made.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fate", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("fate_checked_at", storage.db.UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("fate_settled_at", storage.db.UtcDateTime(), nullable=True))
        batch_op.create_index("ix_outbox_state_done", ["state", "done_at"], unique=False)
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_state_created", ["state", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_state_created")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_state_done")
        batch_op.drop_column("fate_settled_at")
        batch_op.drop_column("fate_checked_at")
        batch_op.drop_column("fate")
