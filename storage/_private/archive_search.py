"""How an archive search becomes SQL: the filters, which of them drives the query, and the capped count.

Most filters are column comparisons that an index of ``archive_tables`` serves in search order. Two are sets
of ids from elsewhere: the FTS5 matches of the text, and the entries sent to a recipient. A set can be
small (a rare word: walk it, fetch its rows, sort them) or huge ("báo cáo" is in most subjects: fetching
every row to sort it costs ~2 µs a row, 140 ms for 70,000). Their sizes are cheap to count first (an FTS
doclist, a covering index), so a set of at most :data:`DRIVE_LIMIT` ids drives the query; a larger one is
only probed (``id + 0 IN (...)`` keeps the planner from driving with it) while an index walks the rows in
search order and stops after one page. At most one cheap count per set, whatever the archive's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    TextClause,
    and_,
    column,
    func,
    select,
    text,
)
from sqlalchemy.sql.selectable import TextualSelect

from storage._private.archive_fields import code_key, type_key
from storage._private.archive_tables import ENTRIES, FTS_COUNT_SQL, FTS_MATCH_SQL, RECIPIENTS
from storage._private.archive_text import fts5_match, like_patterns, parse_text_query

if TYPE_CHECKING:
    from storage.archive import ArchiveQuery

# A set of ids this small drives the query (fetch and sort at most this many rows); a larger one is probed.
DRIVE_LIMIT = 1_000


@dataclass(frozen=True)
class IdSet:
    """A filter "id is one of these": the select of the ids and a cheap count of them."""

    members: Select[int] | TextualSelect
    size: Select[int] | TextClause


@dataclass(frozen=True)
class Filters:
    """The filters of one search: plain conditions, and id sets."""

    conditions: list[ColumnElement[bool]]
    sets: list[IdSet]


def build_filters(query: ArchiveQuery, *, fts: bool) -> Filters:
    """The filters of an ``ArchiveQuery`` (``fts``: SQLite with the FTS5 table, else ``LIKE`` on folded words)."""
    c = ENTRIES.c
    conditions: list[ColumnElement[bool]] = []
    sets: list[IdSet] = []
    for name in ("agency", "direction", "kind", "sender", "document_id", "message_id", "report_period"):
        value = getattr(query, name)
        if value is not None:
            conditions.append(c[name] == value)
    if query.status is not None:
        conditions.append(c.latest_status == query.status)
    if query.code is not None:
        conditions.append(c.code_key == code_key(query.code))
    if query.document_type is not None:
        conditions.append(c.document_type_key == type_key(query.document_type))
    if query.date_from is not None:
        conditions.append(c.doc_date >= query.date_from)
    if query.date_to is not None:
        conditions.append(c.doc_date <= query.date_to)
    if query.recipient is not None:
        where = RECIPIENTS.c.recipient == query.recipient
        sets.append(
            IdSet(select(RECIPIENTS.c.entry_id).where(where), select(func.count()).select_from(RECIPIENTS).where(where))
        )
    if query.text is not None:
        terms = parse_text_query(query.text)
        if fts:
            match = fts5_match(terms)
            members = text(FTS_MATCH_SQL).bindparams(fts_match=match).columns(column("rowid", Integer))
            sets.append(IdSet(members, text(FTS_COUNT_SQL).bindparams(fts_match=match)))
        else:
            conditions.append(and_(*(c.subject_folded.like(p) for p in like_patterns(terms))))
    return Filters(conditions, sets)


@dataclass(frozen=True)
class Plan:
    """The WHERE clause of a search, and the exact total when it came free with the set sizes."""

    where: list[ColumnElement[bool]]
    known_total: int | None


def plan(conn: Connection, filters: Filters) -> Plan:
    """Choose how each id set filters (see the module docstring)."""
    if not filters.sets:
        return Plan(list(filters.conditions), None)
    sizes = [int(conn.execute(s.size).scalar_one()) for s in filters.sets]
    smallest = min(range(len(sizes)), key=sizes.__getitem__)
    where = list(filters.conditions)
    for i, id_set in enumerate(filters.sets):
        if i == smallest and sizes[i] <= DRIVE_LIMIT:
            where.append(ENTRIES.c.id.in_(id_set.members))
        else:
            where.append((ENTRIES.c.id + 0).in_(id_set.members))
    alone = len(filters.sets) == 1 and not filters.conditions
    return Plan(where, sizes[0] if alone else None)
