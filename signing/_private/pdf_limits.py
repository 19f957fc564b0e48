"""Bounds on what reading one untrusted PDF may cost pyHanko, in time, memory and stack.

pyHanko (0.38) bounds what decoding streams may produce (``DecodeLimits``: a Flate bomb in an object
stream, a cross-reference stream or a content stream stops at its limit), but not the rest of reading:

* a cross-reference stream's ``/Index`` (or ``/Size``) says how many entries it has, and in non-strict
  mode an entry past the end of the stream's data is not an error but a default one: a 300-byte file
  declaring two billion entries made the reader build them (40 s and 3 GB, then ``MemoryError``); an
  honest one of nine million rows compresses to 90 KB. A classic table costs 20 bytes of file per entry,
  but pyHanko keeps ~300 bytes of memory for each;
* parsing objects costs about 300 bytes and 5 µs per object: a 14 MB catalog of small dictionaries took
  20 s and 1.3 GB, a 60 MB array of numbers ran out of 3 GB;
* arrays and dictionaries are parsed recursively: a few thousand ``[`` raised ``RecursionError``;
* an object in an object stream is found by reading the stream's header of (number, offset) pairs from
  the start, for every object looked up: a 28 KB file of one stream declaring 400,000 pairs and 2,000
  fields pointing into it cost 1.3 s per field (over 40 minutes).

While :func:`reading_limits` is active (in this thread or task, and in the tasks it starts), every
cross-reference entry and every object parsed counts against a budget, and nesting has a maximum depth;
past them pyHanko's own parsing raises :class:`~pyhanko.pdf_utils.misc.PdfReadError` with what was
exceeded. The counting wraps pyHanko functions where pyHanko looks them up (``xref.parse_xref_table`` and
``xref.parse_xref_stream``, globals of the cross-reference reader; ``generic.read_object``, through which
every object nested in another is read; ``PdfFileReader._get_object_from_stream``, charged with the header
pairs it will read, found once per stream) and is installed once per process (:func:`install`). Outside
:func:`reading_limits` (signing a document of our own) nothing is counted. ``tests/signing/test_pdf_hostile.py``
checks that each bound still holds, so a pyHanko that reads another way shows up there.
"""

from __future__ import annotations

import contextvars
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyhanko.pdf_utils import generic, xref
from pyhanko.pdf_utils.decode_limits import DecodePurpose
from pyhanko.pdf_utils.misc import PdfReadError
from pyhanko.pdf_utils.reader import PdfFileReader

__all__ = ["PdfLimits", "charge_signatures", "install", "reading_limits"]


@dataclass(frozen=True)
class PdfLimits:
    """What one PDF may make the verifier read; official documents use a small fraction of each."""

    # All cross-reference sections of the file together (a 1,000-page document has some 50,000 objects).
    max_xref_entries: int = 250_000
    max_xref_sections: int = 1_000  # one per revision (a hybrid file has two)
    # Objects parsed, re-reads of earlier revisions included (the difference analysis reads each again).
    max_objects: int = 300_000
    max_depth: int = 64  # arrays and dictionaries within each other
    # (number, offset) pairs of object stream headers read (~3 µs each) to find objects: streams hold
    # 100-200 objects, so a document of 10,000 objects in streams reads about a million
    max_header_pairs: int = 1_000_000
    # signatures verified on one budget (all the PDFs of an envelope): each costs a path validation and a
    # difference analysis
    max_signatures: int = 100


class _Budget:
    def __init__(self, limits: PdfLimits) -> None:
        self.limits = limits
        self.entries = self.sections = self.objects = self.depth = self.header_pairs = self.signatures = 0
        # per (reader, object stream): where each object number first appears in its header, and /N
        self.headers: dict[tuple[int, int], tuple[dict[int, int], int]] = {}

    def section(self) -> None:
        self.sections += 1
        if self.sections > self.limits.max_xref_sections:
            raise PdfReadError(f"the PDF has more than {self.limits.max_xref_sections} cross-reference sections")

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_xref_entries:
            raise PdfReadError(
                f"the PDF's cross-reference sections list more than {self.limits.max_xref_entries} objects"
            )

    def header_scan(self, pairs: int) -> None:
        self.header_pairs += pairs
        if self.header_pairs > self.limits.max_header_pairs:
            raise PdfReadError(
                f"finding the PDF's objects in its object streams reads more than {self.limits.max_header_pairs} "
                "header entries"
            )


def charge_signatures(count: int) -> None:
    """Count ``count`` signatures about to be verified against the active budget (if any)."""
    budget = _budget.get()
    if budget is None:
        return
    budget.signatures += count
    if budget.signatures > budget.limits.max_signatures:
        raise PdfReadError(f"more than {budget.limits.max_signatures} PDF signatures to verify in one envelope")


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("pdf_reading_budget", default=None)


@contextmanager
def reading_limits(limits: PdfLimits = PdfLimits()) -> Iterator[None]:
    """Count what pyHanko reads within this block against ``limits`` (one budget for the whole block).

    Inside another such block, the outer budget is used: an envelope verifies all its PDFs on one budget,
    so many PDFs, each under its own bounds, cannot add up to hours.
    """
    install()
    if _budget.get() is not None:
        yield
        return
    token = _budget.set(_Budget(limits))
    try:
        yield
    finally:
        _budget.reset(token)


def _counting_entries(parse: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    def parse_counted(*args: Any, **kwargs: Any) -> Iterator[Any]:
        budget = _budget.get()
        if budget is None:
            yield from parse(*args, **kwargs)
            return
        budget.section()
        for entry in parse(*args, **kwargs):
            budget.entry()
            yield entry

    parse_counted.__wrapped__ = parse  # type: ignore[attr-defined]
    parse_counted._lienthong_limit = True  # type: ignore[attr-defined]
    return parse_counted


def _counting_objects(read: Callable[..., Any]) -> Callable[..., Any]:
    def read_object(stream: Any, container_ref: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget.get()
        if budget is None:
            return read(stream, container_ref, *args, **kwargs)
        limits = budget.limits
        budget.objects += 1
        if budget.objects > limits.max_objects:
            raise PdfReadError(f"the PDF makes the verifier parse more than {limits.max_objects} objects")
        if budget.depth >= limits.max_depth:
            raise PdfReadError(f"the PDF nests arrays or dictionaries more than {limits.max_depth} deep")
        budget.depth += 1
        try:
            return read(stream, container_ref, *args, **kwargs)
        finally:
            budget.depth -= 1

    read_object.__wrapped__ = read  # type: ignore[attr-defined]
    read_object._lienthong_limit = True  # type: ignore[attr-defined]
    return read_object


_PDF_WHITESPACE = re.compile(rb"[\x00\t\n\f\r ]+")


def _header_positions(reader: Any, stmnum: int) -> tuple[dict[int, int], int]:
    """Where each object number first appears in an object stream's header, and its /N, as pyHanko reads it
    (pairs of integers from the start of the decoded data, stopping at the first that is not one)."""
    stream = generic.Reference(stmnum, 0, reader).get_object()
    if not isinstance(stream, generic.StreamObject):
        return {}, 0  # pyHanko refuses it
    count = max(0, int(stream["/N"]))
    data = stream.read_data(DecodePurpose.OBJECT_STREAM)  # kept by pyHanko, which decodes it next anyway
    positions: dict[int, int] = {}
    tokens = _PDF_WHITESPACE.split(data.lstrip(b"\x00\t\n\f\r "), maxsplit=2 * count)
    for i in range(min(count, len(tokens) // 2)):
        try:
            number, _offset = int(tokens[2 * i]), int(tokens[2 * i + 1])
        except ValueError:
            return positions, i + 1
        positions.setdefault(number, i)
    return positions, count


def _counting_header_reads(find: Callable[..., Any]) -> Callable[..., Any]:
    def _get_object_from_stream(self: Any, idnum: int, stmnum: int, idx: int) -> Any:
        budget = _budget.get()
        if budget is not None:
            key = (id(self), stmnum)
            known = budget.headers.get(key)
            if known is None:
                try:
                    known = _header_positions(self, stmnum)
                except Exception:  # not an object stream, no /N…: pyHanko says so in its own words, next
                    known = ({}, 0)
                budget.headers[key] = known
            positions, count = known
            budget.header_scan(positions[idnum] + 1 if idnum in positions else count)
        return find(self, idnum, stmnum, idx)

    _get_object_from_stream.__wrapped__ = find  # type: ignore[attr-defined]
    _get_object_from_stream._lienthong_limit = True  # type: ignore[attr-defined]
    return _get_object_from_stream


_install_lock = threading.Lock()


def install() -> None:
    """Put the counting wrappers in place (idempotent), around whatever pyHanko has there."""
    with _install_lock:
        for module, name, wrap in (
            (xref, "parse_xref_table", _counting_entries),
            (xref, "parse_xref_stream", _counting_entries),
            (generic, "read_object", _counting_objects),
            (PdfFileReader, "_get_object_from_stream", _counting_header_reads),
        ):
            current = getattr(module, name)
            if not getattr(current, "_lienthong_limit", False):
                setattr(module, name, wrap(current))
