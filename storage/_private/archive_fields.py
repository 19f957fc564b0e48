"""Normal forms of the archive's searchable fields: report periods, codes, document types, the search date."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from storage._private.archive_text import fold

# Vietnam keeps UTC+7 all year (no daylight saving): the day an archivist means by "archived on 2026-10-05".
VIETNAM = timezone(timedelta(hours=7), "ICT")

_PERIOD = re.compile(r"(\d{4})(?:-(?:(\d{2})|([QqHh])(\d)))?")


def normalise_period(value: str) -> str | None:
    """``2026``, ``2026-10``, ``2026-Q3`` or ``2026-H1`` (year, month, quarter, half-year; q/h in either case),
    in normal form; None when ``value`` is none of these."""
    match = _PERIOD.fullmatch(value.strip())
    if match is None:
        return None
    year, month, letter, number = match.groups()
    if month is not None:
        return f"{year}-{month}" if 1 <= int(month) <= 12 else None
    if letter is not None:
        letter = letter.upper()
        limit = 4 if letter == "Q" else 2
        return f"{year}-{letter}{number}" if 1 <= int(number) <= limit else None
    return year


PERIOD_FORMS = "YYYY, YYYY-MM, YYYY-Qn (n = 1..4) or YYYY-Hn (n = 1..2)"


def code_key(code: str) -> str:
    """A code (số/ký hiệu) as compared: folded, blanks removed, so "12 / bc-ubnd" finds "12/BC-UBND"."""
    return "".join(fold(code).split())


def type_key(document_type: str) -> str:
    """A document type as compared: folded, blanks collapsed, so "bao cao" finds "Báo cáo"."""
    return " ".join(fold(document_type).split())


def search_date(promulgation_date: date | None, archived_at: datetime) -> date:
    """The date an entry is found and sorted by: its promulgation date, else the day it was archived in Vietnam."""
    return promulgation_date if promulgation_date is not None else archived_at.astimezone(VIETNAM).date()
