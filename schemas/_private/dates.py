"""edXML date and time text forms.

edXML carries dates as ``yyyy/MM/dd`` and timestamps as ``yyyy/MM/dd HH:mm:ss`` without a zone; the
zone is Vietnam time (ICT, UTC+07:00, no daylight saving). The model keeps aware datetimes in ICT.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

VIETNAM_TIME = timezone(timedelta(hours=7), "ICT")

_ISO_DATE = re.compile(r"(\d{4})/(\d{2})/(\d{2})", re.ASCII)
_DAY_FIRST_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})", re.ASCII)
_ISO_TIMESTAMP = re.compile(r"(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2})", re.ASCII)
_DAY_FIRST_TIMESTAMP = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4}) (\d{1,2}):(\d{2}):(\d{2})", re.ASCII)


def format_date(value: date) -> str:
    return f"{value.year:04d}/{value.month:02d}/{value.day:02d}"


def format_timestamp(value: datetime) -> str:
    local = to_vietnam_time(value)
    return f"{format_date(local.date())} {local.hour:02d}:{local.minute:02d}:{local.second:02d}"


def to_vietnam_time(value: datetime) -> datetime:
    """Aware datetime in ICT with whole seconds; a naive value is taken to be Vietnam time already."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=VIETNAM_TIME)
    return value.astimezone(VIETNAM_TIME).replace(microsecond=0)


def parse_date(text: str) -> tuple[date, bool]:
    """Parse a date; returns ``(value, day_first)``: ``day_first`` is the legacy ``dd/MM/yyyy`` quirk.

    Raises ``ValueError`` naming the expected form.
    """
    text = text.strip()
    if m := _ISO_DATE.fullmatch(text):
        return date(int(m[1]), int(m[2]), int(m[3])), False
    if m := _DAY_FIRST_DATE.fullmatch(text):
        return date(int(m[3]), int(m[2]), int(m[1])), True
    raise ValueError(f"date {text!r} is not in the form yyyy/MM/dd")


def parse_timestamp(text: str) -> tuple[datetime, bool]:
    """Parse a timestamp into ICT; returns ``(value, day_first)`` like :func:`parse_date`."""
    text = text.strip()
    if m := _ISO_TIMESTAMP.fullmatch(text):
        y, mo, d, h, mi, s = (int(g) for g in m.groups())
        return datetime(y, mo, d, h, mi, s, tzinfo=VIETNAM_TIME), False
    if m := _DAY_FIRST_TIMESTAMP.fullmatch(text):
        d, mo, y, h, mi, s = (int(g) for g in m.groups())
        return datetime(y, mo, d, h, mi, s, tzinfo=VIETNAM_TIME), True
    raise ValueError(f"timestamp {text!r} is not in the form yyyy/MM/dd HH:mm:ss")
