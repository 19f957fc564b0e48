"""The Liên thông envelope signature profile: XMLDSig with XAdES signed properties.

One ``ds:Signature`` in ``edXMLHeader`` after ``TraceHeaderList``, with one Reference per signed part
(``#edxml-header``, ``#edxml-business``, ``#edxml-manifest``, ``#edxml-attachment-N``) plus the XAdES
``SignedProperties``. Every reference uses exclusive C14N and SHA-256. The route (``TraceHeader``) is
outside every reference, so a hop may append to it without breaking the signature.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from lxml import etree

from schemas import BUSINESS_ID, HEADER_ID, MANIFEST_ID, NAMESPACE, attachment_id

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
    found = [c for c in parent if c.tag == tag]
    if len(found) != 1:
        raise LayoutError(f"{what}: expected exactly one, found {len(found)}")
    return found[0]


def signed_parts(root: etree._Element) -> list[SignedPart]:
    """The parts a Liên thông envelope signature covers, in reference order.

    Each is looked up at its fixed place, never by Id: an attacker may add elements with the same Id
    elsewhere (signature wrapping), and only the element at the legitimate place is what a reader uses.
    """
    if root.tag != ed("edXML"):
        raise LayoutError(f"root element is {root.tag}, not edXML in the edXML namespace")
    envelope = _only(root, ed("edXMLEnvelope"), "edXMLEnvelope")
    header = _only(envelope, ed("edXMLHeader"), "edXMLHeader")
    message_header = _only(header, ed("MessageHeader"), "MessageHeader")
    parts = [SignedPart("MessageHeader", HEADER_ID, message_header)]
    if message_header.find(ed("StatusCode")) is not None:
        return parts
    trace_list = _only(header, ed("TraceHeaderList"), "TraceHeaderList")
    parts.append(SignedPart("Bussiness", BUSINESS_ID, _only(trace_list, ed("Bussiness"), "Bussiness")))
    body = _only(envelope, ed("edXMLBody"), "edXMLBody")
    parts.append(SignedPart("edXMLManifest", MANIFEST_ID, _only(body, ed("edXMLManifest"), "edXMLManifest")))
    encoded = [c for c in root if c.tag == ed("AttachmentEncoded")]
    if len(encoded) > 1:
        raise LayoutError(f"AttachmentEncoded: expected at most one, found {len(encoded)}")
    for i, item in enumerate(c for c in (encoded[0] if encoded else []) if c.tag == ed("Attachment")):
        cid = (item.findtext(ed("ContentId")) or "?").strip()
        name = (item.findtext(ed("AttachmentName")) or "?").strip()
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
