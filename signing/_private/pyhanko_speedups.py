"""Faster versions of functions that dominate verifying a PAdES signature, with the same results.

Each is installed by replacing a module attribute, once per process (:func:`install`), and only when
the attribute is still the function it was written against (and pyHanko's character classes are still
the ones copied here): if a new pyHanko or asn1crypto renames or replaces it, the original stays in
place and verification is merely slower.

* ``pyhanko.pdf_utils.generic.read_hex_string_from_stream`` reads a hex string one byte at a time,
  through a generator and ``read_non_whitespace``: a signature's /Contents (tens of thousands of hex
  digits, most of them the zero padding of the reserved room) took about a quarter of a verification,
  and the difference analysis reads each signature dictionary more than once. The replacement reads the
  run up to the closing ``>`` in bulk. When the run holds only hex digits and PDF whitespace, the result
  is what pyHanko computes (whitespace ignored, an odd last digit followed by an implied ``0``); anything
  else (a comment, any other byte, no ``>`` before the end) seeks back and lets pyHanko's own function
  read it, so it raises exactly what it raises. ``read_object`` looks the function up as a module global
  of ``pyhanko.pdf_utils.generic`` on every call, so replacing that attribute is enough.
* ``pyhanko.pdf_utils.generic.read_until_delimiter`` (``misc.read_until_delimiter``, imported into
  ``generic``, which reads every name and content-stream operator with it) reads one byte at a time
  through a generator; the difference analysis reads thousands of names. The replacement reads a chunk
  and finds the first PDF whitespace or delimiter with a regular expression, and leaves the stream where
  pyHanko's leaves it: at that delimiter, or at the end of the stream if there is none.
* ``asn1crypto.x509.RelativeDistinguishedName._get_values`` runs the LDAP string preparation of RFC 4518
  (stringprep, NFKC) on every attribute of the name each time two names are compared; pyHanko's
  ``match_issuer_serial`` compares the same few names many times per signature. The prepared values
  depend only on the attribute types and values, that is on the DER of the RDN, so they are remembered by
  it (a bounded LRU). Each caller gets its own copy of the dictionary. Errors (a prohibited code point)
  are not remembered: they are raised again each time, as before.
"""

from __future__ import annotations

import binascii
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic, misc

__all__ = ["install", "read_hex_string_from_stream", "read_until_delimiter"]

# As pyHanko's misc.PDF_WHITESPACE, misc.PDF_DELIMITERS and generic.HEX_DIGITS; copied so that a change
# there cannot silently change what the fast paths do (install checks they still agree).
_PDF_WHITESPACE = b" \n\r\t\f\x00"
_PDF_DELIMITERS = b"()<>[]{}/%"
_HEX_DIGITS = b"0123456789abcdefABCDEF"
_TOKEN_END = re.compile(b"[" + re.escape(_PDF_WHITESPACE + _PDF_DELIMITERS) + b"]")
# Names and operators are short: one read nearly always holds the whole token.
_TOKEN_READ = 64
# Signature /Contents are ~10-40 KB of hex; start there and double, so one or two reads find the end.
_FIRST_READ = 16384


def _is(function: object, module: str, qualname: str) -> bool:
    return getattr(function, "__module__", None) == module and getattr(function, "__qualname__", None) == qualname


# The functions replaced, taken only if they are the ones this module was written against (and not, say,
# this module's own replacements after a reload).
_original_read_hex: Callable[[Any], Any] | None = (
    generic.read_hex_string_from_stream
    if _is(generic.read_hex_string_from_stream, "pyhanko.pdf_utils.generic", "read_hex_string_from_stream")
    else None
)
# generic imports it from misc; its namespace (where read_object and NameObject look it up) is what counts
_GENERIC = vars(generic)
_original_read_until_delimiter: Callable[[Any], bytes] | None = (
    _GENERIC.get("read_until_delimiter")
    if _is(_GENERIC.get("read_until_delimiter"), "pyhanko.pdf_utils.misc", "read_until_delimiter")
    else None
)
_original_get_values: Callable[[Any, Any], dict[str, str]] | None = (
    asn1_x509.RelativeDistinguishedName.__dict__.get("_get_values")
    if _is(
        asn1_x509.RelativeDistinguishedName.__dict__.get("_get_values"),
        "asn1crypto.x509",
        "RelativeDistinguishedName._get_values",
    )
    else None
)


def _hex_digits(stream: Any) -> bytes | None:
    """The digits of the hex string at the stream's position (its ``<``), leaving the stream after its
    ``>``; None (the stream where it was) if anything about it is unusual."""
    start = stream.tell()
    stream.read(1)  # the "<", not checked: pyHanko's function does not check it either
    parts: list[bytes] = []
    size = _FIRST_READ
    while True:
        chunk = stream.read(size)
        end = chunk.find(b">")
        if end >= 0:
            parts.append(chunk[:end])
            break
        parts.append(chunk)
        if len(chunk) < size:  # the stream ended before the string did: pyHanko reports that
            stream.seek(start)
            return None
        size *= 2
    run = b"".join(parts)
    digits = run.translate(None, _PDF_WHITESPACE)
    if digits.translate(None, _HEX_DIGITS):  # a comment, or a byte pyHanko rejects: its function decides
        stream.seek(start)
        return None
    stream.seek(start + 1 + len(run) + 1)
    return digits


def read_hex_string_from_stream(stream: Any) -> Any:
    """``pyhanko.pdf_utils.generic.read_hex_string_from_stream``, reading the digits in bulk."""
    assert _original_read_hex is not None  # installed only when it was found
    digits = _hex_digits(stream)
    if digits is None:
        return _original_read_hex(stream)
    if len(digits) % 2:
        digits += b"0"
    return generic.pdf_string(binascii.unhexlify(digits))


def read_until_delimiter(stream: Any) -> bytes:
    """``pyhanko.pdf_utils.misc.read_until_delimiter``: the bytes up to the next PDF whitespace or delimiter
    (or the end), the stream left at that delimiter (or at the end)."""
    start = stream.tell()
    parts: list[bytes] = []
    consumed = 0
    size = _TOKEN_READ
    while True:
        chunk = stream.read(size)
        found = _TOKEN_END.search(chunk)
        if found is not None:
            parts.append(chunk[: found.start()])
            stream.seek(start + consumed + found.start())
            break
        parts.append(chunk)
        if len(chunk) < size:  # the end of the stream: pyHanko stays there too
            break
        consumed += len(chunk)
        size *= 2
    return b"".join(parts)


class _Memo:
    """A small thread-safe LRU; values are stored as given and copied by the caller."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, dict[str, str]] = OrderedDict()

    def get(self, key: bytes) -> dict[str, str] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: bytes, value: dict[str, str]) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# A node sees a few hundred distinct issuer and subject RDNs; a few thousand leave room for many more.
_RDN_VALUES = _Memo(4096)


def _get_values(self: Any, rdn: Any) -> dict[str, str]:
    """``RelativeDistinguishedName._get_values``, remembered by the RDN's DER."""
    assert _original_get_values is not None  # installed only when it was found
    key = rdn.dump()
    found = _RDN_VALUES.get(key)
    if found is None:
        found = _original_get_values(self, rdn)
        _RDN_VALUES.put(key, dict(found))
    return dict(found)


_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Put the replacements in place (idempotent), each only over the function it was written for."""
    global _installed
    with _install_lock:
        if _installed:
            return
        same_classes = (
            misc.PDF_WHITESPACE == _PDF_WHITESPACE
            and misc.PDF_DELIMITERS == _PDF_DELIMITERS
            and generic.HEX_DIGITS == _HEX_DIGITS
        )
        if (
            same_classes
            and _original_read_hex is not None
            and generic.read_hex_string_from_stream is _original_read_hex
        ):
            generic.read_hex_string_from_stream = read_hex_string_from_stream
        if (
            same_classes
            and _original_read_until_delimiter is not None
            and _GENERIC.get("read_until_delimiter") is _original_read_until_delimiter
        ):
            _GENERIC["read_until_delimiter"] = read_until_delimiter
        rdn = asn1_x509.RelativeDistinguishedName
        if _original_get_values is not None and rdn.__dict__.get("_get_values") is _original_get_values:
            rdn._get_values = _get_values
        _installed = True
