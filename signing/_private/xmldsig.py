"""The Liên thông envelope signature profile: XMLDSig with XAdES signed properties.

One ``ds:Signature`` in ``edXMLHeader`` after ``TraceHeaderList``, with one Reference per signed part
(``#edxml-header``, ``#edxml-business``, ``#edxml-manifest``, ``#edxml-attachment-N``) plus the XAdES
``SignedProperties``. Every reference uses exclusive C14N and SHA-256. The route (``TraceHeader``) is
outside every reference, so a hop may append to it without breaking the signature.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from dataclasses import dataclass
from typing import cast

from lxml import etree

from schemas import BUSINESS_ID, HEADER_ID, MANIFEST_ID, NAMESPACE, XmlLimits, attachment_id, parse_xml_safely

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
DIGESTS = {
    SHA256: hashlib.sha256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": hashlib.sha384,
    "http://www.w3.org/2001/04/xmlenc#sha512": hashlib.sha512,
}
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
SIGNATURE_ID = "edxml-signature"
SIGNED_PROPERTIES_ID = "edxml-signed-properties"
SIGNATURE_VALUE_ID = "edxml-signature-value"


def ds(local: str) -> str:
    return f"{{{DS}}}{local}"


def xades(local: str) -> str:
    return f"{{{XADES}}}{local}"


def ed(local: str) -> str:
    return f"{{{NAMESPACE}}}{local}"


def c14n(element: etree._Element) -> bytes:
    """Exclusive XML canonicalisation without comments, of ``element`` and its subtree."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def digest_b64(element: etree._Element, algorithm: str = SHA256) -> str:
    return base64.b64encode(DIGESTS[algorithm](c14n(element)).digest()).decode("ascii")


@dataclass(frozen=True, slots=True)
class SignedPart:
    """A part of the message the signature must cover, found at its one legitimate place."""

    label: str  # for people: "MessageHeader", "attachment cid:1 (bao-cao.pdf)"
    id: str
    element: etree._Element


class LayoutError(ValueError):
    """The message is not laid out as an edXML envelope; the text says where."""


def _only(parent: etree._Element, tag: str, what: str) -> etree._Element:
    found = list(parent.iterchildren(tag))
    if len(found) != 1:
        raise LayoutError(f"{what}: expected exactly one, found {len(found)}")
    return found[0]


def _child_text(parent: etree._Element, tag: str) -> str:
    """``(parent.findtext(tag) or "?").strip()``: the text of the first such child."""
    child = next(parent.iterchildren(tag), None)
    return ((child.text if child is not None else None) or "?").strip()


_EDXML, _ENVELOPE, _HEADER, _MESSAGE_HEADER = ed("edXML"), ed("edXMLEnvelope"), ed("edXMLHeader"), ed("MessageHeader")
_STATUS_CODE, _TRACE_LIST, _BUSINESS, _BODY = ed("StatusCode"), ed("TraceHeaderList"), ed("Bussiness"), ed("edXMLBody")
_MANIFEST, _ENCODED, _ATTACHMENT = ed("edXMLManifest"), ed("AttachmentEncoded"), ed("Attachment")
_CONTENT_ID, _ATTACHMENT_NAME = ed("ContentId"), ed("AttachmentName")


def signed_parts(root: etree._Element) -> list[SignedPart]:
    """The parts a Liên thông envelope signature covers, in reference order.

    Each is looked up at its fixed place, never by Id: an attacker may add elements with the same Id
    elsewhere (signature wrapping), and only the element at the legitimate place is what a reader uses.
    """
    if root.tag != _EDXML:
        raise LayoutError(f"root element is {root.tag}, not edXML in the edXML namespace")
    envelope = _only(root, _ENVELOPE, "edXMLEnvelope")
    header = _only(envelope, _HEADER, "edXMLHeader")
    message_header = _only(header, _MESSAGE_HEADER, "MessageHeader")
    parts = [SignedPart("MessageHeader", HEADER_ID, message_header)]
    if next(message_header.iterchildren(_STATUS_CODE), None) is not None:
        return parts
    trace_list = _only(header, _TRACE_LIST, "TraceHeaderList")
    parts.append(SignedPart("Bussiness", BUSINESS_ID, _only(trace_list, _BUSINESS, "Bussiness")))
    body = _only(envelope, _BODY, "edXMLBody")
    parts.append(SignedPart("edXMLManifest", MANIFEST_ID, _only(body, _MANIFEST, "edXMLManifest")))
    encoded = list(root.iterchildren(_ENCODED))
    if len(encoded) > 1:
        raise LayoutError(f"AttachmentEncoded: expected at most one, found {len(encoded)}")
    for i, item in enumerate(encoded[0].iterchildren(_ATTACHMENT) if encoded else ()):
        cid = _child_text(item, _CONTENT_ID)
        name = _child_text(item, _ATTACHMENT_NAME)
        parts.append(SignedPart(f"attachment {cid} ({name})", attachment_id(i), item))
    return parts


# Where unsigned content may be: only the route. Anything else outside the signed parts is refused.
ALLOWED_CHILDREN = {
    ed("edXML"): {ed("edXMLEnvelope"), ed("AttachmentEncoded")},
    ed("edXMLEnvelope"): {ed("edXMLHeader"), ed("edXMLBody")},
    ed("edXMLHeader"): {ed("MessageHeader"), ed("TraceHeaderList"), ds("Signature")},
    ed("TraceHeaderList"): {ed("TraceHeader"), ed("Bussiness")},
    ed("edXMLBody"): {ed("edXMLManifest")},
    ed("AttachmentEncoded"): {ed("Attachment")},
}


# --- fast paths for signing -----------------------------------------------------------------------------

_LIMITS = XmlLimits()
# Documents starting like this (what lxml writes: build_message output) have nothing before the root element
# that parse_xml_safely's prolog check could refuse: no DOCTYPE, comment, PI, BOM, stray bytes or foreign
# encoding. A DOCTYPE can only be in the prolog, so such a document has none at all.
_PLAIN_PROLOG = re.compile(
    rb"""(?:<\?xml version=(["'])1\.0\1 encoding=(["'])(?:UTF-8|utf-8)\2\?>)?[ \t\r\n]*<[A-Za-z_]"""
)
_local = threading.local()


def _fast_parser() -> tuple[etree.XMLParser, etree.XPath]:
    """This thread's parser, configured as parse_xml_safely's, and its depth test (lxml objects stay in a thread)."""
    try:
        return cast(tuple[etree.XMLParser, etree.XPath], _local.parser)
    except AttributeError:
        parser = etree.XMLParser(
            resolve_entities=False,
            load_dtd=False,
            dtd_validation=False,
            no_network=True,
            huge_tree=True,
            remove_comments=True,
            remove_pis=True,
            remove_blank_text=False,
        )
        # any element deeper than max_depth (the root is at depth 1)
        too_deep = etree.XPath("boolean(" + "/*" * (_LIMITS.max_depth + 1) + ")")
        _local.parser = (parser, too_deep)
        return parser, too_deep


def parse(data: bytes) -> etree._Element:
    """``parse_xml_safely(data)``: the same tree, the same errors, faster for plain documents.

    A document with a plain prolog (see ``_PLAIN_PROLOG``) is parsed in one go by libxml2, with the
    options parse_xml_safely gives iterparse, and its depth and element count are checked afterwards:
    that is the same set of accepted documents and the same tree, without a Python loop over every
    element. Anything else, or anything that fails, goes through parse_xml_safely, which says why.
    Used for signing (our own messages); verification keeps the incremental reader for untrusted input.
    """
    if isinstance(data, bytes) and len(data) <= _LIMITS.max_bytes and _PLAIN_PROLOG.match(data):
        parser, too_deep = _fast_parser()
        try:
            root = etree.fromstring(data, parser)
        except etree.XMLSyntaxError:
            root = None
        # every element takes at least 4 bytes ("<a/>"): below that size, the count cannot be over the limit
        if (
            root is not None
            and not root.getroottree().docinfo.doctype  # type: ignore[union-attr]
            and not too_deep(root)
            and (len(data) < 4 * _LIMITS.max_elements or sum(1 for _ in root.iter()) <= _LIMITS.max_elements)
        ):
            return root
    return parse_xml_safely(data)


_BIG_TEXT = 4096
_TEXT_HOLE = "@@lienthong-c14n-text@@"


def digest_b64_consuming(element: etree._Element, algorithm: str = SHA256) -> str:
    """``digest_b64(element)``, without having libxml2 canonicalise a large text (an attachment's base64).

    **Takes the large text out of the tree**: for a caller that throws the tree away afterwards.

    Exclusive C14N writes a text node as its UTF-8 with ``&``, ``<``, ``>`` and CR escaped, so a text
    without them is written as is. The text of the first leaf child of ``element`` with a large text is
    replaced by a placeholder, the element is canonicalised, and the large text's own bytes are hashed in
    the placeholder's place: the same digest at a fraction of the cost. (Putting the text back would
    cost lxml's character check of all of it, about as much as the canonicalisation saved; moving a
    stand-in element in and out lets lxml re-pick the namespace prefix, which changes the bytes.)
    Anything unusual takes the plain way, leaving the tree as it was.
    """
    big, text = None, ""
    for child in element:
        if len(child) == 0 and child.text is not None:
            text = child.text
            if len(text) >= _BIG_TEXT:
                big = child
                break
    if big is None or "&" in text or "<" in text or ">" in text or "\r" in text:
        return digest_b64(element, algorithm)
    big.text = _TEXT_HOLE
    pieces = c14n(element).split(_TEXT_HOLE.encode())
    if len(pieces) != 2:  # the placeholder text is elsewhere in the element too (an attribute): rare
        big.text = text
        return digest_b64(element, algorithm)
    h = DIGESTS[algorithm](pieces[0])
    h.update(text.encode())
    h.update(pieces[1])
    return base64.b64encode(h.digest()).decode("ascii")
