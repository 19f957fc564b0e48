"""Tables of the archive index (chỉ mục lưu trữ): one row per archived envelope copy, its recipients, and on
SQLite an FTS5 index of the folded subjects kept in sync by triggers.

Every search orders by ``(doc_date DESC, id DESC)``; each index ends with those two columns so that a filter
on its leading columns reads the newest rows first and stops after one page, with no sort.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import JSON, Connection, Date, ForeignKey, Index, Integer, String, Table, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, UtcDateTime

FTS_TABLE = "archive_subject_fts"


# Short columns searches often add to another filter. Kept at the end of the search-order indexes (after
# ``id``: the order is unchanged) so SQLite checks them on the index entry and reads the row only for a match:
# "reports still at status 01" walks the status index without touching the ~3 µs-a-row table.
_TAIL = ("agency", "kind", "direction", "latest_status", "document_type_key")


def _tail(leading: str = "") -> tuple[str, ...]:
    return tuple(name for name in _TAIL if name != leading)


class ArchiveEntryRow(Base):
    """One archived envelope copy (bản lưu): a document or status message sent, received or routed through."""

    __tablename__ = "archive_entries"
    __table_args__ = (
        Index("ix_archive_date", "doc_date", "id", *_tail()),
        Index("ix_archive_agency_date", "agency", "doc_date", "id", *_tail("agency")),
        Index("ix_archive_agency_period", "agency", "report_period", "doc_date", "id", *_tail("agency")),
        Index("ix_archive_period", "report_period", "doc_date", "id", *_tail()),
        Index("ix_archive_sender", "sender", "doc_date", "id", *_tail()),
        Index("ix_archive_type", "document_type_key", "doc_date", "id", *_tail("document_type_key")),
        Index("ix_archive_status", "latest_status", "doc_date", "id", *_tail("latest_status")),
        Index("ix_archive_document", "document_id"),
        Index("ix_archive_message", "message_id"),
        Index("ix_archive_code", "code_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    envelope_id: Mapped[int | None] = mapped_column(Integer, unique=True, nullable=True)
    agency: Mapped[str] = mapped_column(String(35))
    direction: Mapped[str] = mapped_column(String(8))  # in | out | transit
    kind: Mapped[str] = mapped_column(String(8))  # document | status
    message_id: Mapped[str] = mapped_column(String(64))
    document_id: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(200), default="")
    code_key: Mapped[str] = mapped_column(String(200), default="")  # folded, no blanks
    document_type: Mapped[str] = mapped_column(String(200), default="")
    document_type_key: Mapped[str] = mapped_column(String(200), default="")  # folded
    subject: Mapped[str] = mapped_column(Text, default="")
    subject_folded: Mapped[str] = mapped_column(Text, default="")  # see archive_text.folded_text
    sender: Mapped[str] = mapped_column(String(35), default="")
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    promulgation_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    report_period: Mapped[str | None] = mapped_column(String(7), nullable=True)
    status_code: Mapped[str | None] = mapped_column(String(8), nullable=True)
    latest_status: Mapped[str | None] = mapped_column(String(8), nullable=True)
    verified: Mapped[str] = mapped_column(String(40), default="")
    object_key: Mapped[str] = mapped_column(String(100))
    report_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    evidence_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    archived_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # The date searches and sorting use: the promulgation date, else the archiving date in Vietnam time.
    doc_date: Mapped[date] = mapped_column(Date)


class ArchiveRecipientRow(Base):
    """One recipient of an archived entry, so that "everything sent to X" is an index lookup, not a JSON scan."""

    __tablename__ = "archive_recipients"
    __table_args__ = (Index("ix_archive_recipient", "recipient", "doc_date", "entry_id"),)

    entry_id: Mapped[int] = mapped_column(ForeignKey("archive_entries.id"), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(35), primary_key=True)
    doc_date: Mapped[date] = mapped_column(Date)  # copied from the entry: the recipient index is in search order


ENTRIES = cast(Table, ArchiveEntryRow.__table__)
RECIPIENTS = cast(Table, ArchiveRecipientRow.__table__)

# SQLite: an external-content FTS5 table over the folded subject. The triggers keep it in step with every
# insert, update and delete however the rows are written (ORM, Core, bulk, or by hand in the sqlite3 shell).
# The text is folded before it gets here, so the tokenizer needs no diacritic handling of its own.
_FTS_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS archive_subject_fts USING fts5(subject_folded, content='archive_entries', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER IF NOT EXISTS archive_entries_fts_ai AFTER INSERT ON archive_entries BEGIN "
    "INSERT INTO archive_subject_fts(rowid, subject_folded) VALUES (new.id, new.subject_folded); END",
    "CREATE TRIGGER IF NOT EXISTS archive_entries_fts_ad AFTER DELETE ON archive_entries BEGIN "
    "INSERT INTO archive_subject_fts(archive_subject_fts, rowid, subject_folded) "
    "VALUES ('delete', old.id, old.subject_folded); END",
    "CREATE TRIGGER IF NOT EXISTS archive_entries_fts_au AFTER UPDATE OF subject_folded ON archive_entries BEGIN "
    "INSERT INTO archive_subject_fts(archive_subject_fts, rowid, subject_folded) "
    "VALUES ('delete', old.id, old.subject_folded); "
    "INSERT INTO archive_subject_fts(rowid, subject_folded) VALUES (new.id, new.subject_folded); END",
)
FTS_MATCH_SQL = "SELECT rowid FROM archive_subject_fts WHERE archive_subject_fts MATCH :fts_match"
FTS_COUNT_SQL = "SELECT count(*) FROM archive_subject_fts WHERE archive_subject_fts MATCH :fts_match"


@event.listens_for(ENTRIES, "after_create")
def _create_fts(_target: Table, connection: Connection, **_kw: Any) -> None:
    if connection.dialect.name == "sqlite":
        for statement in _FTS_DDL:
            connection.exec_driver_sql(statement)


@event.listens_for(ENTRIES, "before_drop")
def _drop_fts(_target: Table, connection: Connection, **_kw: Any) -> None:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {FTS_TABLE}")
