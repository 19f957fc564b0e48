"""Reading ``Signature-Input``/``Signature`` before the library does, to name what is wrong precisely.

The library turns every problem into one ``InvalidSignature``; the protocol needs to tell a malformed
request (400) from an unauthenticated one (401), and to refuse oversized or ambiguous headers before any
cryptography runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import http_sf

from adapters._private.messages import header_values
from adapters.errors import MalformedSignatureError, SignatureInvalidError, SignatureMissingError

# A v1 signature input is ~200 characters; 4 KiB leaves room for future components but stops header bombs
# from reaching the parser.
MAX_FIELD_CHARS = 4096
MAX_COMPONENTS = 16


@dataclass(frozen=True)
class ParsedSignature:
    label: str
    components: tuple[tuple[str, frozenset[tuple[str, Any]]], ...]  # (name, parameters) in signed order
    params: dict[str, Any]
    signature: bytes


def joined_field(pairs: Sequence[tuple[str, str]], name: str) -> str | None:
    """All lines of a field joined as RFC 9110 says; None when absent. Refuses oversized fields."""
    values = header_values(pairs, name)
    if not values:
        return None
    value = ", ".join(v.strip() for v in values)
    if len(value) > MAX_FIELD_CHARS:
        raise MalformedSignatureError(f"the {name} header is {len(value)} characters; the limit is {MAX_FIELD_CHARS}")
    return value


def _parse_dictionary(value: str, name: str) -> dict[str, Any]:
    def reject_duplicate(key: str, context: str) -> None:
        # A repeated label would let a proxy or an attacker choose which of two signatures is checked.
        raise MalformedSignatureError(f"the {name} header repeats the {context} key {key!r}")

    try:
        parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary", on_duplicate_key=reject_duplicate)
    except MalformedSignatureError:
        raise
    except (ValueError, TypeError, UnicodeEncodeError) as e:
        raise MalformedSignatureError(f"the {name} header is not a Structured Field dictionary: {e}") from None
    if not isinstance(parsed, dict):  # pragma: no cover - the parser returns a dict for tltype="dictionary"
        raise MalformedSignatureError(f"the {name} header is not a dictionary")
    return parsed


def parse_signature(pairs: Sequence[tuple[str, str]], label: str) -> ParsedSignature:
    """The one signature labelled ``label``; raises a typed error saying what is wrong."""
    raw_input = joined_field(pairs, "Signature-Input")
    raw_signature = joined_field(pairs, "Signature")
    if raw_input is None or raw_signature is None:
        missing = "Signature-Input" if raw_input is None else "Signature"
        raise SignatureMissingError(f"the request is not signed (no {missing} header)")
    inputs = _parse_dictionary(raw_input, "Signature-Input")
    signatures = _parse_dictionary(raw_signature, "Signature")
    if set(inputs) != set(signatures):
        raise MalformedSignatureError("Signature-Input and Signature name different labels")
    if label not in inputs:
        raise SignatureMissingError(f"no signature labelled {label!r}")
    if len(inputs) != 1:
        # v1 has exactly one signer per request; a second one could only confuse which was checked.
        raise MalformedSignatureError(f"exactly one signature is expected, found labels {sorted(inputs)}")
    members, params = inputs[label]
    if not isinstance(members, list):
        raise MalformedSignatureError(f"Signature-Input {label!r} is not an inner list of components")
    if len(members) > MAX_COMPONENTS:
        raise MalformedSignatureError(f"the signature covers {len(members)} components; the limit is {MAX_COMPONENTS}")
    components: list[tuple[str, frozenset[tuple[str, Any]]]] = []
    for name, item_params in members:
        if not isinstance(name, str):
            raise MalformedSignatureError("a covered component is not a string")
        components.append((name, frozenset(item_params.items())))
    value, _ = signatures[label]
    if not isinstance(value, bytes) or not value:
        raise MalformedSignatureError(f"Signature {label!r} is not a byte sequence")
    return ParsedSignature(label, tuple(components), dict(params), value)


def required_str(params: dict[str, Any], name: str, *, max_len: int = 256) -> str:
    value = params.get(name)
    if value is None:
        raise SignatureInvalidError(f"the signature has no {name!r} parameter")
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise MalformedSignatureError(f"the signature parameter {name!r} must be a string of 1..{max_len} characters")
    return value


def required_int(params: dict[str, Any], name: str) -> int:
    value = params.get(name)
    if value is None:
        raise SignatureInvalidError(f"the signature has no {name!r} parameter")
    if type(value) is not int:
        raise MalformedSignatureError(f"the signature parameter {name!r} must be an integer")
    return value
