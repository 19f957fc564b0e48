"""RFC 8785 canonical JSON (JSON Canonicalization Scheme), the byte form of every audit log leaf.

Numbers: integers within ±(2**53 - 1) only (beyond, other languages would read a different number), and
floats only when they hold an integral value (``3.0`` is written ``3``). Fractional numbers are refused:
their text depends on shortest-round-trip formatting that not every verifier reproduces, and an audit event
has no need of them; write amounts as integers of the smallest unit, or as strings. ``NaN`` and infinities
are not JSON. Keys must be strings; tuples are written as arrays; ``bytes`` are refused (give base64 or hex).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import rfc8785

from storage.errors import CanonicalJSONError
from storage.merkle import leaf_hash

MAX_SAFE_INTEGER = 2**53 - 1


def _check(value: Any, path: str) -> Any:
    """``value`` with integral floats made ints; raises on what canonical JSON for the log refuses."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise CanonicalJSONError(f"{path}: integer {value} is beyond ±(2**53 - 1), write it as a string")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise CanonicalJSONError(f"{path}: {value!r} is not an integral number; write it as an integer or a string")
        return _check(int(value), path)
    if isinstance(value, Mapping):
        checked: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJSONError(f"{path}: key {key!r} is not a string")
            checked[key] = _check(item, f"{path}.{key}")
        return checked
    if isinstance(value, list | tuple):
        return [_check(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise CanonicalJSONError(f"{path}: {type(value).__name__} is not a JSON value")


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``value`` (sorted keys, no spaces, ES6 numbers)."""
    checked = _check(value, "$")
    try:
        return rfc8785.dumps(checked)
    except rfc8785.CanonicalizationError as exc:  # lone surrogates in strings, for instance
        raise CanonicalJSONError(f"not canonicalizable: {exc}") from exc


def event_leaf(event: Mapping[str, Any]) -> bytes:
    """The leaf data of an audit event: its canonical JSON. The event must be a JSON object."""
    if not isinstance(event, Mapping):
        raise CanonicalJSONError(f"an audit event is a JSON object, not {type(event).__name__}")
    return canonical_json(event)


def event_leaf_hash(event: Mapping[str, Any]) -> bytes:
    """The RFC 9162 leaf hash of an audit event."""
    return leaf_hash(event_leaf(event))
