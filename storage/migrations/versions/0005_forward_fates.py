"""What became of a forwarded message further up: when a child node last asked an axis about it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

An axis answering a child node about a copy it forwarded to its parent asks the parent in turn, once a child
asked and at most once per check interval; ``fate_asked_at`` says a child asked since the axis last asked the
parent, and its index finds those few rows without reading every forward ever made.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fate_asked_at", storage.db.UtcDateTime(), nullable=True))
        batch_op.create_index("ix_outbox_fate_asked", ["fate_asked_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_fate_asked")
        batch_op.drop_column("fate_asked_at")
