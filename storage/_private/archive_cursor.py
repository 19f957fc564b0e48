"""Keyset cursors of archive searches: where the last page stopped, the total, and which query it belongs to.

A cursor is opaque to callers (base64url of a small JSON array). It holds the sort key of the last row shown,
so the next page is an index seek whatever its depth (an OFFSET would read and drop every earlier row), the
total counted on the first page (not recounted on every page), and a fingerprint of the filters so that a
cursor handed to a different search is refused instead of silently skipping rows.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import date

from storage.errors import ArchiveQueryError

_VERSION = 1
MAX_CURSOR_LENGTH = 200
_MAX_INT = 2**63 - 1  # what the database's integers hold: a larger id made the driver fail


@dataclass(frozen=True)
class Cursor:
    """The sort key ``(doc_date, id)`` of the last row of a page, the search's total (exact or capped), and
    the fingerprint of its filters."""

    doc_date: date
    id: int
    total: int
    exact: bool
    fingerprint: str

    def encode(self) -> str:
        raw = json.dumps([_VERSION, self.doc_date.isoformat(), self.id, self.total, self.exact, self.fingerprint])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str, fingerprint: str) -> Cursor:
    """The cursor ``text`` of a search with ``fingerprint``; :class:`ArchiveQueryError` saying what is wrong."""
    if not text or len(text) > MAX_CURSOR_LENGTH:
        raise ArchiveQueryError("malformed cursor: pass next_cursor exactly as a previous page returned it")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        version, day, row_id, total, exact, marker = json.loads(raw)
        cursor = Cursor(date.fromisoformat(day), row_id, total, exact, marker)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ArchiveQueryError("malformed cursor: pass next_cursor exactly as a previous page returned it") from exc
    if (
        version != _VERSION
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _MAX_INT for v in (row_id, total))
        or not isinstance(exact, bool)
    ):
        raise ArchiveQueryError("malformed cursor: pass next_cursor exactly as a previous page returned it")
    if cursor.fingerprint != fingerprint:
        raise ArchiveQueryError("cursor belongs to a search with other filters: start again without a cursor")
    return cursor
