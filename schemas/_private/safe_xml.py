"""Safe XML reading: no DTDs, no entities, no network or file access, bounded size, depth and count.

The prolog is checked by hand before libxml2 sees a byte of markup, so a DOCTYPE (the door to
billion-laughs, quadratic blow-up and external entities) is refused without being parsed. The body is
then read incrementally by lxml's ``iterparse`` from a byte stream that counts what it hands over.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, cast

from lxml import etree

from schemas.errors import Location, UnreadableXmlError, UnsafeXmlError

UTF8_BOM = b"\xef\xbb\xbf"
MAX_PROLOG_BYTES = 64 * 1024
MAX_STRAY_PREFIX = 4096


@dataclass(frozen=True, slots=True)
class XmlLimits:
    """Bounds on a document before and while it is read."""

    max_bytes: int = 400 * 1024 * 1024  # the whole file, attachments included
    max_depth: int = 64
    max_elements: int = 200_000


@dataclass(frozen=True, slots=True)
class Prolog:
    stray_prefix: int  # bytes skipped before the XML declaration (tolerant mode only)
    declared_encoding: str | None


_DECL_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_NAME_START = re.compile(rb"[A-Za-z_:\x80-\xff]")


def check_prolog(head: bytes, *, allow_stray_prefix: bool) -> Prolog:
    """Inspect the bytes before the root element and refuse anything but a declaration, comments and PIs.

    ``head`` must be at least the first ``MAX_PROLOG_BYTES + MAX_STRAY_PREFIX`` bytes of the document
    (or all of it). Raises :class:`UnsafeXmlError` for a DOCTYPE, :class:`UnreadableXmlError` otherwise.
    """
    stray = 0
    pos = 3 if head.startswith(UTF8_BOM) else 0
    if head[pos : pos + 2] in (b"\xff\xfe", b"\xfe\xff") or head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise UnreadableXmlError("document is UTF-16; edXML is exchanged in UTF-8")
    first = _skip_space(head, pos)
    if head[first : first + 1] != b"<":
        decl = head.find(b"<?xml", 0, MAX_STRAY_PREFIX)
        if decl < 0:
            what = "empty" if not head.strip() else "not XML: no '<' or XML declaration at the start"
            raise UnreadableXmlError(f"document is {what}")
        if not allow_stray_prefix:
            raise UnreadableXmlError(
                f"{decl} stray bytes before the XML declaration (accepted with a warning in tolerant mode)",
                Location(1, ""),
            )
        stray, first = decl, decl
    pos = first
    encoding = None
    if head.startswith(b"<?xml", pos) and head[pos + 5 : pos + 6] in (b" ", b"\t", b"\r", b"\n", b"?"):
        end = head.find(b"?>", pos)
        if end < 0:
            raise UnreadableXmlError("XML declaration is not closed")
        if m := _DECL_ENCODING.search(head, pos, end):
            encoding = m[1].decode("ascii")
            if encoding.lower().replace("_", "-") not in ("utf-8", "utf8", "us-ascii", "ascii"):
                raise UnreadableXmlError(f"document declares encoding {encoding}; edXML is exchanged in UTF-8")
        pos = end + 2
    while True:
        pos = _skip_space(head, pos)
        if pos - stray > MAX_PROLOG_BYTES or pos >= len(head):
            raise UnreadableXmlError(
                f"no root element within the first {MAX_PROLOG_BYTES // 1024} KiB"
                if pos < len(head) or len(head) > MAX_PROLOG_BYTES
                else "document ends before its root element"
            )
        if head.startswith(b"<!--", pos):
            end = head.find(b"-->", pos + 4)
            if end < 0:
                raise UnreadableXmlError("comment before the root element is not closed (or too long)")
            pos = end + 3
        elif head.startswith(b"<?", pos):
            end = head.find(b"?>", pos + 2)
            if end < 0:
                raise UnreadableXmlError("processing instruction before the root element is not closed")
            pos = end + 2
        elif head.startswith(b"<!DOCTYPE", pos) or head.startswith(b"<!doctype", pos):
            raise UnsafeXmlError(
                "document type declarations (DOCTYPE/DTD) are not allowed: they carry entity expansion "
                "and external references",
                Location(head.count(b"\n", 0, pos) + 1, ""),
            )
        elif head.startswith(b"<!", pos):
            raise UnsafeXmlError("markup declarations are not allowed before the root element")
        elif head.startswith(b"<", pos) and _NAME_START.match(head, pos + 1):
            return Prolog(stray_prefix=stray, declared_encoding=encoding)
        else:
            raise UnreadableXmlError(
                f"unexpected bytes before the root element at offset {pos}",
                Location(head.count(b"\n", 0, pos) + 1, ""),
            )


def _skip_space(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] in b" \t\r\n":
        pos += 1
    return pos


class _BoundedReader(io.RawIOBase):
    """Hands lxml the document bytes, stopping with an error once ``limit`` bytes have gone by."""

    def __init__(self, head: bytes, rest: IO[bytes] | None, skip: int, limit: int) -> None:
        self._head = memoryview(head)[skip:]
        self._rest = rest
        self._limit = limit
        self._count = 0
        self.over_limit = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = 1024 * 1024 if size is None or size < 0 else size
        if self._head:
            chunk = bytes(self._head[:size])
            self._head = self._head[size:]
        elif self._rest is not None:
            chunk = self._rest.read(size)
        else:
            chunk = b""
        self._count += len(chunk)
        if self._count > self._limit:
            self.over_limit = True
            raise UnsafeXmlError(f"document is larger than the limit of {self._limit} bytes")
        return chunk


def _read_at_least(stream: IO[bytes], size: int) -> bytes:
    """``size`` bytes or up to the end: one ``read`` may return less on pipes and raw streams."""
    chunks, have = [], 0
    while have < size:
        chunk = stream.read(size - have)
        if not chunk:
            break
        chunks.append(chunk)
        have += len(chunk)
    return b"".join(chunks)


def element_path(element: etree._Element) -> str:
    """``/edXML/edXMLEnvelope/...`` with local names and 1-based indexes where siblings share a name."""
    parts = []
    node: etree._Element | None = element
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent if isinstance(c.tag, str) and c.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))


def location_of(element: etree._Element) -> Location:
    # lxml-stubs types sourceline oddly; it is an int, or None for elements built in memory.
    return Location(cast(int | None, element.sourceline), element_path(element))


def iterparse_safely(
    source: bytes | bytearray | memoryview | IO[bytes], *, limits: XmlLimits, allow_stray_prefix: bool
) -> tuple[Prolog, Iterator[tuple[str, etree._Element]]]:
    """Check the prolog, then yield ``(event, element)`` for ``start`` and ``end`` events within ``limits``.

    Comments and processing instructions are dropped. Parse errors become :class:`UnreadableXmlError`
    with the line; limits become :class:`UnsafeXmlError`.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if len(data) > limits.max_bytes:
            raise UnsafeXmlError(f"document is {len(data)} bytes; the limit is {limits.max_bytes}")
        head, rest = data, None
    else:
        head, rest = _read_at_least(source, MAX_PROLOG_BYTES + MAX_STRAY_PREFIX), source
    prolog = check_prolog(head, allow_stray_prefix=allow_stray_prefix)
    reader = _BoundedReader(head, rest, prolog.stray_prefix, limits.max_bytes)
    return prolog, _events(reader, limits)


def _events(reader: _BoundedReader, limits: XmlLimits) -> Iterator[tuple[str, etree._Element]]:
    parser = etree.iterparse(
        reader,
        events=("start", "end"),
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=True,  # our own limits apply instead of libxml2's 10 MB text-node cap
        remove_comments=True,
        remove_pis=True,
        remove_blank_text=False,
    )
    depth = 0
    count = 0
    try:
        for event, element in parser:
            if event == "start":
                depth += 1
                count += 1
                if count == 1 and element.getroottree().docinfo.doctype:
                    raise UnsafeXmlError("document type declarations (DOCTYPE/DTD) are not allowed")
                if depth > limits.max_depth:
                    raise UnsafeXmlError(
                        f"elements nest deeper than {limits.max_depth} levels",
                        Location(element.sourceline, etree.QName(element).localname),
                    )
                if count > limits.max_elements:
                    raise UnsafeXmlError(
                        f"document has more than {limits.max_elements} elements",
                        Location(element.sourceline, etree.QName(element).localname),
                    )
            else:
                depth -= 1
            yield event, element
    except etree.XMLSyntaxError as e:
        if reader.over_limit:
            raise UnsafeXmlError(f"document is larger than the limit of {limits.max_bytes} bytes") from None
        msg, line = str(e.msg or e), e.lineno
        # With resolve_entities=False, lxml's iterparse replaces libxml2's error (e.g. "Entity 'foo' not
        # defined") by a generic "no element found" at line 0; the real one is the last in the error log.
        last = getattr(e.error_log, "last_error", None) if not line else None  # lxml-stubs omit it
        if last is not None and last.line:
            msg, line = last.message, last.line
        if "entity" in msg.lower() and "not defined" in msg.lower():
            raise UnsafeXmlError(f"entity references are not allowed: {msg}", Location(line, "")) from None
        raise UnreadableXmlError(f"not well-formed XML: {msg}", Location(line, "")) from None


def parse_xml_safely(
    source: bytes | bytearray | memoryview | IO[bytes],
    *,
    limits: XmlLimits = XmlLimits(),
    allow_stray_prefix: bool = False,
) -> etree._Element:
    """The root of a whole document read under the same rules as edXML messages (no DTD, bounded)."""
    _prolog, events = iterparse_safely(source, limits=limits, allow_stray_prefix=allow_stray_prefix)
    root: etree._Element | None = None
    for _event, element in events:
        if root is None:
            root = element
    assert root is not None
    return root
