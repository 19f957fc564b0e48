"""Turning an unsuccessful HTTP answer into an error that says whether a retry can help."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from adapters.errors import PermanentDeliveryError, RetryableDeliveryError

# 408 timeout, 425 too early, 429 too many requests: the same request may succeed later.
RETRYABLE_4XX = frozenset({408, 425, 429})
# 501 not implemented, 508 loop detected (the axis saw this envelope pass already): deterministic, retrying
# the same request can only get the same answer.
PERMANENT_5XX = frozenset({501, 508})


def retry_can_help(status: int) -> bool:
    """Whether the same request may succeed later (5xx but the deterministic ones, and 408/425/429)."""
    return (status >= 500 and status not in PERMANENT_5XX) or status in RETRYABLE_4XX


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def problem_of(body: bytes) -> dict[str, Any] | None:
    """The RFC 9457 problem document in ``body`` (any JSON object will do), else None."""
    if not body or len(body) > 65536:
        return None
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def error_for(
    status: int, body: bytes, retry_after: str | None, *, what: str, signed: bool
) -> RetryableDeliveryError | PermanentDeliveryError:
    problem = problem_of(body)
    text = ""
    if problem is not None:
        title, detail = problem.get("title"), problem.get("detail")
        text = ": " + " — ".join(str(x) for x in (title, detail) if x)
    elif body:
        text = ": " + body[:200].decode("utf-8", "replace")
    message = f"{what}: HTTP {status}{text}"
    if retry_can_help(status):
        return RetryableDeliveryError(message, status=status, retry_after=retry_after_seconds(retry_after))
    return PermanentDeliveryError(message, status=status, problem=problem, signed=signed)


def error_for_problem(problem: dict[str, Any], *, what: str) -> RetryableDeliveryError | PermanentDeliveryError:
    """The error for one refused item of a batch answer: its problem document, classified by its ``status``."""
    raw = problem.get("status")
    status = raw if isinstance(raw, int) and 400 <= raw <= 599 else 500
    title, detail = problem.get("title"), problem.get("detail")
    message = f"{what}: HTTP {status}: " + " — ".join(str(x) for x in (title, detail) if x)
    if retry_can_help(status):
        return RetryableDeliveryError(message, status=status)
    # The batch answer as a whole is signed and verified, so each item's problem is too.
    return PermanentDeliveryError(message, status=status, problem=problem, signed=True)
