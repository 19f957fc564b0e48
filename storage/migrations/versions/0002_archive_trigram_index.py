"""PostgreSQL: a trigram index on the archive's folded subjects, so text search does not scan every row.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

SQLite searches its FTS5 table (revision 0001) and needs nothing. On PostgreSQL the search is ``LIKE '%word%'``
on the folded subject, which a GIN index with ``gin_trgm_ops`` (extension pg_trgm, shipped with PostgreSQL)
answers without a sequential scan. Creating the extension needs the right to; a DBA can create it beforehand.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEX = "ix_archive_subject_trgm"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON archive_entries USING gin (subject_folded gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {INDEX}")
