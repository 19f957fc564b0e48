"""The archive index (chỉ mục lưu trữ): one row per archived envelope copy, searchable by what archivists ask.

The bytes live in the object store; a row keeps their key, the keys of the verification report and of the
evidence it used (OCSP responses, CRLs, timestamps), and the fields people search by: agency, direction,
document id, code (số/ký hiệu), type, subject (trích yếu), sender, recipients, dates, report period, statuses.

Searches are keyset-paginated, newest first by ``(search date, id)``, where the search date is the promulgation
date, else the day the entry was archived (Vietnam time). Text search is on the subject, accent- and
case-insensitive: SQLite uses an FTS5 index kept in sync by triggers; other databases fall back to ``LIKE`` on
the folded words (same results, no index: a PostgreSQL ``tsvector`` index can replace it later).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)

from storage._private.archive_cursor import Cursor, decode_cursor
from storage._private.archive_fields import PERIOD_FORMS, code_key, normalise_period, search_date, type_key
from storage._private.archive_search import build_filters, plan
from storage._private.archive_tables import ENTRIES, FTS_TABLE, RECIPIENTS, ArchiveEntryRow
from storage._private.archive_text import folded_text, parse_text_query
from storage.errors import ArchiveEntryNotFoundError, ArchiveQueryError, ArchiveRecordError

__all__ = [
    "DEFAULT_COUNT_LIMIT",
    "DIRECTIONS",
    "KINDS",
    "MAX_PAGE_SIZE",
    "ArchiveEntry",
    "ArchiveEntryRow",
    "ArchiveIndex",
    "ArchivePage",
    "ArchiveQuery",
    "ArchiveRecord",
]

DIRECTIONS = ("in", "out", "transit")
KINDS = ("document", "status")
MAX_PAGE_SIZE = 500
DEFAULT_COUNT_LIMIT = 1_000
_MAX_TEXT = 500


@dataclass(frozen=True, kw_only=True)
class ArchiveRecord:
    """What the node knows of an envelope copy when it archives it (before it has an id).

    ``agency`` is the organisation of this node the copy concerns (the sender for ``out``, the recipient
    for ``in``; on an axis, either). ``latest_status`` defaults to ``status_code`` for a status message.
    ``archived_at`` defaults to now.
    """

    agency: str
    direction: str
    kind: str
    message_id: str
    document_id: str
    object_key: str
    envelope_id: int | None = None
    code: str = ""
    document_type: str = ""
    subject: str = ""
    sender: str = ""
    recipients: tuple[str, ...] = ()
    promulgation_date: date | None = None
    report_period: str | None = None
    status_code: str | None = None
    latest_status: str | None = None
    verified: str = ""
    report_key: str | None = None
    evidence_keys: tuple[str, ...] = ()
    archived_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ArchiveEntry:
    """One archived envelope copy as the index holds it (bản lưu)."""

    id: int
    envelope_id: int | None
    agency: str
    direction: str
    kind: str
    message_id: str
    document_id: str
    code: str
    document_type: str
    subject: str
    sender: str
    recipients: tuple[str, ...]
    promulgation_date: date | None
    report_period: str | None
    status_code: str | None
    latest_status: str | None
    verified: str
    object_key: str
    report_key: str | None
    evidence_keys: tuple[str, ...]
    archived_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The entry as JSON-ready values (dates as ISO 8601 text, tuples as lists)."""
        out = asdict(self)
        out["recipients"] = list(self.recipients)
        out["evidence_keys"] = list(self.evidence_keys)
        out["promulgation_date"] = self.promulgation_date.isoformat() if self.promulgation_date else None
        out["archived_at"] = self.archived_at.isoformat()
        return out


@dataclass(frozen=True, kw_only=True)
class ArchiveQuery:
    """An archive search (tìm kiếm): every filter given must hold; text words must all be in the subject.

    Exact matches: ``agency``, ``direction``, ``kind``, ``sender``, ``recipient`` (any of the recipients),
    ``document_id``, ``message_id``, ``status`` (the latest status of a document, the code of a status message).
    Accent- and case-insensitive: ``code`` (blanks ignored), ``document_type``, ``text`` (words of the subject;
    ``"quoted phrase"``, ``prefix*``). ``report_period``: ``YYYY``, ``YYYY-MM``, ``YYYY-Qn``, ``YYYY-Hn``, exact.
    ``date_from``/``date_to``: inclusive, on the promulgation date, else the archiving day (Vietnam time).
    ``cursor``: the ``next_cursor`` of the previous page of the same search. Invalid values raise
    :class:`ArchiveQueryError` when the query is made.
    """

    agency: str | None = None
    direction: str | None = None
    kind: str | None = None
    sender: str | None = None
    recipient: str | None = None
    document_id: str | None = None
    message_id: str | None = None
    code: str | None = None
    document_type: str | None = None
    status: str | None = None
    report_period: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    text: str | None = None
    limit: int = 50
    cursor: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not 1 <= self.limit <= MAX_PAGE_SIZE:
            raise ArchiveQueryError(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}, not {self.limit!r}")
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise ArchiveQueryError(f"direction must be one of {', '.join(DIRECTIONS)}, not {self.direction!r}")
        if self.kind is not None and self.kind not in KINDS:
            raise ArchiveQueryError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.report_period is not None:
            period = normalise_period(self.report_period)
            if period is None:
                raise ArchiveQueryError(f"unknown report period {self.report_period!r}: use {PERIOD_FORMS}")
            object.__setattr__(self, "report_period", period)
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, datetime) or not isinstance(value, date)):
                raise ArchiveQueryError(f"{name} must be a date (no time of day), not {value!r}")
        if self.date_from is not None and self.date_to is not None and self.date_from > self.date_to:
            raise ArchiveQueryError(f"date_from {self.date_from} is after date_to {self.date_to}")
        if self.text is not None:
            if len(self.text) > _MAX_TEXT:
                raise ArchiveQueryError(f"text search is {len(self.text)} characters long; at most {_MAX_TEXT}")
            parse_text_query(self.text)  # refuse text with nothing to search now, not at the first search
        if self.code is not None and not code_key(self.code):
            raise ArchiveQueryError("code has no characters to look for")

    def fingerprint(self) -> str:
        """A short digest of the filters (not ``limit`` or ``cursor``): which search a cursor belongs to."""
        filters = {k: v for k, v in asdict(self).items() if k not in ("limit", "cursor")}
        return hashlib.sha256(json.dumps(filters, default=str, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ArchivePage:
    """One page of results, newest first; ``next_cursor`` is None on the last page.

    ``total`` is the number of matches, counted on the first page and carried by the cursor. Counting every
    match of a broad search would cost more than the page, so the count stops past the index's
    ``count_limit`` (1,000 by default): then ``total == count_limit`` and ``total_exact`` is False ("more
    than 1,000"). :meth:`ArchiveIndex.count` gives the exact number.
    """

    items: tuple[ArchiveEntry, ...]
    total: int
    next_cursor: str | None
    total_exact: bool = True


class ArchiveIndex:
    """The archive index on the node's database (tables made by ``storage.db.create_schema``)."""

    def __init__(self, engine: Engine, *, count_limit: int = DEFAULT_COUNT_LIMIT) -> None:
        if count_limit < 1:
            raise ValueError("count_limit must be at least 1")
        self._engine = engine
        self._count_limit = count_limit
        self._fts: bool | None = None

    # Writing.

    def add(self, record: ArchiveRecord | None = None, /, **fields: Any) -> int:
        """Index one envelope copy (a record, or its fields as keywords); its id.

        Raises :class:`ArchiveRecordError` for invalid fields, ``sqlalchemy.exc.IntegrityError`` if
        ``envelope_id`` is already archived.
        """
        if record is None:
            try:
                record = ArchiveRecord(**fields)
            except TypeError as exc:
                raise ArchiveRecordError(str(exc)) from exc
        elif fields:
            raise ArchiveRecordError("give an ArchiveRecord or keyword fields, not both")
        return self.add_many([record])[0]

    def add_many(self, records: Iterable[ArchiveRecord]) -> list[int]:
        """Index many copies in one transaction (all or none); their ids, in order."""
        records = list(records)
        if not records:
            return []
        with self._engine.begin() as conn:
            return self.add_in(conn, records)

    def add_in(self, conn: Connection, records: Iterable[ArchiveRecord]) -> list[int]:
        """Index copies inside the caller's transaction on ``conn``: they are indexed if and only if the
        change that stored them is committed."""
        rows = [_row_values(r) for r in records]
        if not rows:
            return []
        ids = _insert_entries(conn, [values for values, _ in rows])
        links = [
            {"entry_id": entry_id, "recipient": recipient, "doc_date": values["doc_date"]}
            for entry_id, (values, recipients) in zip(ids, rows, strict=True)
            for recipient in recipients
        ]
        if links:
            conn.execute(insert(RECIPIENTS), links)
        return ids

    def update_status(self, document_id: str, agency: str, code: str) -> int:
        """Record ``code`` as the latest status of the documents ``document_id`` archived for ``agency``;
        how many entries changed. The caller decides what "latest" means (statuses may arrive out of order)."""
        with self._engine.begin() as conn:
            return self.update_status_in(conn, document_id, agency, code)

    def update_status_in(self, conn: Connection, document_id: str, agency: str, code: str) -> int:
        """:meth:`update_status` inside the caller's transaction on ``conn``."""
        result = conn.execute(
            update(ENTRIES)
            .where(ENTRIES.c.document_id == document_id, ENTRIES.c.agency == agency, ENTRIES.c.kind == "document")
            .values(latest_status=code)
        )
        return int(result.rowcount)

    # Reading.

    def get(self, entry_id: int) -> ArchiveEntry:
        """The entry ``entry_id``; :class:`ArchiveEntryNotFoundError` if there is none."""
        with self._engine.connect() as conn:
            row = conn.execute(select(*_COLUMNS).where(ENTRIES.c.id == entry_id)).first()
        if row is None:
            raise ArchiveEntryNotFoundError(f"no archive entry {entry_id}")
        return _entry(row)

    def search(self, query: ArchiveQuery) -> ArchivePage:
        """One page of the entries matching ``query``, newest first (see :class:`ArchivePage` for ``total``)."""
        fingerprint = query.fingerprint()
        cursor = decode_cursor(query.cursor, fingerprint) if query.cursor is not None else None
        order = (ENTRIES.c.doc_date.desc(), ENTRIES.c.id.desc())
        with self._engine.connect() as conn:
            chosen = plan(conn, build_filters(query, fts=self._uses_fts(conn)))
            where = chosen.where
            if cursor is not None:
                total, exact = cursor.total, cursor.exact
                where = [*where, tuple_(ENTRIES.c.doc_date, ENTRIES.c.id) < tuple_(cursor.doc_date, cursor.id)]
            if cursor is not None or chosen.known_total is not None:
                if cursor is None:
                    total, exact = chosen.known_total or 0, True
                rows = conn.execute(select(*_COLUMNS).where(*where).order_by(*order).limit(query.limit + 1)).all()
            else:
                # First page: one walk in search order finds the page and counts on to the cap, where a
                # count and a page query would each walk the same rows.
                keys = (
                    conn.execute(select(ENTRIES.c.id).where(*where).order_by(*order).limit(self._count_limit + 1))
                    .scalars()
                    .all()
                )
                total, exact = min(len(keys), self._count_limit), len(keys) <= self._count_limit
                wanted = keys[: query.limit + 1]
                rows = (
                    conn.execute(select(*_COLUMNS).where(ENTRIES.c.id.in_(wanted)).order_by(*order)).all()
                    if wanted
                    else []
                )
        items = tuple(_entry(row) for row in rows[: query.limit])
        next_cursor = None
        if len(rows) > query.limit:
            last = rows[query.limit - 1]
            next_cursor = Cursor(last.doc_date, last.id, total, exact, fingerprint).encode()
        return ArchivePage(items, total, next_cursor, total_exact=exact)

    def count(self, query: ArchiveQuery) -> int:
        """The exact number of entries matching ``query`` (``limit`` and ``cursor`` ignored); slower than a
        page on broad searches: it reads every match."""
        with self._engine.connect() as conn:
            chosen = plan(conn, build_filters(query, fts=self._uses_fts(conn)))
            if chosen.known_total is not None:
                return chosen.known_total
            return int(conn.execute(select(func.count()).select_from(ENTRIES).where(*chosen.where)).scalar_one())

    def _uses_fts(self, conn: Connection) -> bool:
        if self._fts is None:
            self._fts = conn.dialect.name == "sqlite" and (
                conn.execute(
                    text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"), {"name": FTS_TABLE}
                ).first()
                is not None
            )
        return self._fts


_COLUMNS = [
    ENTRIES.c[name]
    for name in (
        "id",
        "envelope_id",
        "agency",
        "direction",
        "kind",
        "message_id",
        "document_id",
        "code",
        "document_type",
        "subject",
        "sender",
        "recipients",
        "promulgation_date",
        "report_period",
        "status_code",
        "latest_status",
        "verified",
        "object_key",
        "report_key",
        "evidence_keys",
        "archived_at",
        "doc_date",
    )
]


def _entry(row: Row[Any]) -> ArchiveEntry:
    values = row._asdict()
    del values["doc_date"]
    values["recipients"] = tuple(values["recipients"] or ())
    values["evidence_keys"] = tuple(values["evidence_keys"] or ())
    return ArchiveEntry(**values)


def _insert_entries(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows``; their ids in the order given."""
    if conn.dialect.name != "sqlite":
        result = conn.execute(insert(ENTRIES).returning(ENTRIES.c.id, sort_by_parameter_order=True), rows)
        return [int(i) for i in result.scalars()]
    # SQLAlchemy sorts SQLite RETURNING rows by sending one statement per row (SQLite does not promise their
    # order): 2x slower. Not needed here: under the write lock this transaction holds, SQLite gives each new
    # row max(rowid) + 1, in the order the rows are inserted, so the ids are the contiguous run of the returned
    # ones, ascending. Checked, not assumed.
    ids = sorted(int(i) for i in conn.execute(insert(ENTRIES).returning(ENTRIES.c.id), rows).scalars())
    if len(ids) != len(rows) or ids[-1] - ids[0] != len(rows) - 1:
        raise ArchiveRecordError("the database did not number the new archive entries contiguously; nothing was added")
    return ids


def _strings(name: str, values: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str) or not all(isinstance(v, str) and v for v in values):
        raise ArchiveRecordError(f"{name} must be a list of non-empty strings, not {values!r}")
    return tuple(values)


def _row_values(record: ArchiveRecord) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The column values of ``record``, checked, and its distinct recipients."""
    for name in ("agency", "message_id", "document_id", "object_key"):
        value = getattr(record, name)
        if not isinstance(value, str) or not value.strip():
            raise ArchiveRecordError(f"{name} must be a non-empty string, not {value!r}")
    if record.direction not in DIRECTIONS:
        raise ArchiveRecordError(f"direction must be one of {', '.join(DIRECTIONS)}, not {record.direction!r}")
    if record.kind not in KINDS:
        raise ArchiveRecordError(f"kind must be one of {', '.join(KINDS)}, not {record.kind!r}")
    period = None
    if record.report_period is not None:
        period = normalise_period(record.report_period)
        if period is None:
            raise ArchiveRecordError(f"unknown report period {record.report_period!r}: use {PERIOD_FORMS}")
    archived_at = record.archived_at or datetime.now(UTC)
    if archived_at.tzinfo is None:
        raise ArchiveRecordError("archived_at is a naive datetime: give the time zone")
    if record.promulgation_date is not None and isinstance(record.promulgation_date, datetime):
        raise ArchiveRecordError("promulgation_date must be a date, not a datetime")
    recipients = _strings("recipients", record.recipients)
    values = {
        "envelope_id": record.envelope_id,
        "agency": record.agency,
        "direction": record.direction,
        "kind": record.kind,
        "message_id": record.message_id,
        "document_id": record.document_id,
        "code": record.code,
        "code_key": code_key(record.code),
        "document_type": record.document_type,
        "document_type_key": type_key(record.document_type),
        "subject": record.subject,
        "subject_folded": folded_text(record.subject),
        "sender": record.sender,
        "recipients": list(recipients),
        "promulgation_date": record.promulgation_date,
        "report_period": period,
        "status_code": record.status_code,
        "latest_status": record.latest_status if record.latest_status is not None else record.status_code,
        "verified": record.verified,
        "object_key": record.object_key,
        "report_key": record.report_key,
        "evidence_keys": list(_strings("evidence_keys", record.evidence_keys)),
        "archived_at": archived_at,
        "doc_date": search_date(record.promulgation_date, archived_at),
    }
    return values, tuple(dict.fromkeys(recipients))
