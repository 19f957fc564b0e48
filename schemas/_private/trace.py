"""Append a hop to an envelope's route (TraceHeaderList) without touching anything that was signed.

The sender's signature covers MessageHeader, Bussiness, the manifest and the attachments; TraceHeader
elements are siblings of Bussiness inside TraceHeaderList, so a new one changes no signed element's
canonical form. The document is re-serialised by lxml, which C14N makes invisible to the signature.
"""

from __future__ import annotations

from lxml import etree

from schemas._private.dates import format_timestamp
from schemas._private.safe_xml import XmlLimits, parse_xml_safely
from schemas.errors import InvalidEdxmlError
from schemas.model import NAMESPACE, TraceHeader

_NS = f"{{{NAMESPACE}}}"


def append_trace_header(data: bytes, hop: TraceHeader, *, limits: XmlLimits | None = None) -> bytes:
    """``data`` with ``hop`` added after the last TraceHeader (before Bussiness when there is none)."""
    root = parse_xml_safely(data, limits=limits or XmlLimits())
    lists = root.findall(f"{_NS}edXMLEnvelope/{_NS}edXMLHeader/{_NS}TraceHeaderList")
    if len(lists) != 1:
        raise InvalidEdxmlError(f"expected one edXMLHeader/TraceHeaderList, found {len(lists)}")
    trace_list = lists[0]
    element = etree.Element(f"{_NS}TraceHeader")
    etree.SubElement(element, f"{_NS}OrganId").text = hop.organ_id
    etree.SubElement(element, f"{_NS}Timestamp").text = format_timestamp(hop.timestamp)
    existing = trace_list.findall(f"{_NS}TraceHeader")
    if existing:
        element.tail = existing[-1].tail
        existing[-1].addnext(element)
    else:
        element.tail = trace_list.text
        trace_list.insert(0, element)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8") + b"\n"
