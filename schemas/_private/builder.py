"""Emit edXML bytes from the model: namespace-correct and deterministic (same model, same bytes)."""

from __future__ import annotations

from datetime import date

from lxml import etree

from schemas._private.dates import format_date, format_timestamp
from schemas.attachments import encode_attachment
from schemas.model import (
    NAMESPACE,
    Business,
    DocumentHeader,
    DocumentMessage,
    Message,
    Organization,
    ResponseFor,
    StaffInfo,
    StatusMessage,
    TraceHeader,
)

_NSMAP = {None: NAMESPACE, "edXML": NAMESPACE}

# The parts the sending organisation's signature covers carry these Ids, so an XMLDSig Reference can name
# each one: everything but the route (TraceHeader), which hops append after signing.
HEADER_ID = "edxml-header"
BUSINESS_ID = "edxml-business"
MANIFEST_ID = "edxml-manifest"


def attachment_id(index: int) -> str:
    """The Id of the ``index``-th (0-based) AttachmentEncoded/Attachment."""
    return f"edxml-attachment-{index + 1}"


_ATTACHMENT_INDENT = "\n    "


def _q(local: str) -> str:
    return f"{{{NAMESPACE}}}{local}"


class _Writer:
    """Appends children to a parent; keeps the builder's element code one line per element."""

    __slots__ = ("parent",)

    def __init__(self, parent: etree._Element) -> None:
        self.parent = parent

    def text(self, local: str, value: str) -> None:
        etree.SubElement(self.parent, _q(local)).text = value or None  # empty → <edXML:Fax/>

    def child(self, local: str, signed_id: str | None = None) -> _Writer:
        element = etree.SubElement(self.parent, _q(local))
        if signed_id is not None:
            element.set("Id", signed_id)
        return _Writer(element)


def build_message(message: Message) -> bytes:
    """The edXML bytes of ``message`` (UTF-8, with declaration, two-space indentation, no signature)."""
    root = etree.Element(_q("edXML"), nsmap=_NSMAP)  # type: ignore[arg-type]
    # Children pick the default namespace of the root unless the edXML prefix is nearer: declare it here.
    envelope = _Writer(etree.SubElement(root, _q("edXMLEnvelope"), nsmap={"edXML": NAMESPACE}))
    header = envelope.child("edXMLHeader")
    if isinstance(message, DocumentMessage):
        _document_header(header.child("MessageHeader", HEADER_ID), message.header)
        trace = header.child("TraceHeaderList")
        _trace(trace, message.trace)
        _business(trace.child("Bussiness", BUSINESS_ID), message.business)
        manifest = envelope.child("edXMLBody").child("edXMLManifest", MANIFEST_ID)
        manifest.parent.set("version", "1.0")
        for att in message.attachments:
            ref = manifest.child("Reference")
            ref.text("ContentId", f"cid:{att.content_id}")
            ref.text("ContentType", att.content_type)
            ref.text("Description", att.description)
            ref.text("AttachmentName", att.name)
    else:
        _status_header(header.child("MessageHeader", HEADER_ID), message)
        _trace(header.child("TraceHeaderList"), message.trace)
    etree.indent(root, space="  ")
    if isinstance(message, DocumentMessage) and message.attachments:
        _attachments(root, message)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8") + b"\n"


def _attachments(root: etree._Element, message: DocumentMessage) -> None:
    # Written after indenting so the base64 text is not touched; whitespace by hand to match the rest.
    root[-1].tail = "\n  "
    encoded = etree.SubElement(root, _q("AttachmentEncoded"))  # unprefixed: the root's default namespace
    encoded.text = "\n    "
    encoded.tail = "\n"
    for i, att in enumerate(message.attachments):
        item = etree.SubElement(encoded, _q("Attachment"), Id=attachment_id(i))
        item.text = "\n      "
        item.tail = _ATTACHMENT_INDENT if i + 1 < len(message.attachments) else "\n  "
        fields = (
            ("ContentId", f"cid:{att.content_id}"),
            ("AttachmentName", att.name),
            ("Description", att.description),
            ("ContentType", att.content_type),
        )
        for local, value in fields:
            el = etree.SubElement(item, _q(local))
            el.text = value or None
            el.tail = "\n      "
        body = etree.SubElement(item, _q("ContentTransferEncoded"), nsmap={"edXML": NAMESPACE})
        body.text = encode_attachment(att.name, att.content_type, att.data)
        body.tail = "\n    "


def _organization(w: _Writer, org: Organization) -> None:
    w.text("OrganId", org.organ_id)
    w.text("OrganizationInCharge", org.organization_in_charge)
    w.text("OrganName", org.organ_name)
    w.text("OrganAdd", org.organ_add)
    w.text("Email", org.email)
    w.text("Telephone", org.telephone)
    w.text("Fax", org.fax)
    w.text("Website", org.website)


def _opt_date(value: date | None) -> str:
    return format_date(value) if value is not None else ""


def _response_for(w: _Writer, rf: ResponseFor) -> None:
    w.text("OrganId", rf.organ_id)
    w.text("Code", rf.code)
    w.text("PromulgationDate", _opt_date(rf.promulgation_date))
    w.text("DocumentId", rf.document_id)


def _staff(w: _Writer, staff: StaffInfo) -> None:
    w.text("Department", staff.department)
    w.text("Staff", staff.staff)
    w.text("Email", staff.email)
    w.text("Mobile", staff.mobile)


def _document_header(w: _Writer, h: DocumentHeader) -> None:
    _organization(w.child("From"), h.from_)
    for to in h.to:
        _organization(w.child("To"), to)
    w.text("DocumentId", h.document_id)
    code = w.child("Code")
    code.text("CodeNumber", h.code.code_number)
    code.text("CodeNotation", h.code.code_notation)
    prom = w.child("PromulgationInfo")
    prom.text("Place", h.promulgation_info.place)
    prom.text("PromulgationDate", format_date(h.promulgation_info.promulgation_date))
    dtype = w.child("DocumentType")
    dtype.text("Type", str(h.document_type.type))
    dtype.text("TypeDetail", str(h.document_type.type_detail))
    dtype.text("TypeName", h.document_type.type_name)
    w.text("Subject", h.subject)
    w.text("Content", h.content)
    signer = w.child("SignerInfo")
    signer.text("Competence", h.signer_info.competence)
    signer.text("Position", h.signer_info.position)
    signer.text("FullName", h.signer_info.full_name)
    if h.due_date is not None:
        w.text("DueDate", format_date(h.due_date))
    other = w.child("OtherInfo")
    o = h.other_info
    other.text("Priority", str(int(o.priority)))
    other.text("SphereOfPromulgation", o.sphere_of_promulgation)
    other.text("TyperNotation", o.typer_notation)
    other.text("PromulgationAmount", str(o.promulgation_amount))
    other.text("PageAmount", str(o.page_amount))
    other.text("Direction", "true" if o.direction else "false")
    if o.appendixes:
        appendixes = other.child("Appendixes")
        for appendix in o.appendixes:
            appendixes.text("Appendix", appendix)
    for rf in h.response_for:
        _response_for(w.child("ResponseFor"), rf)
    w.text("SteeringType", str(h.steering_type))
    if h.to_places:
        places = w.child("ToPlaces")
        for place in h.to_places:
            places.text("Place", place)


def _trace(w: _Writer, trace: tuple[TraceHeader, ...]) -> None:
    for hop in trace:
        th = w.child("TraceHeader")
        th.text("OrganId", hop.organ_id)
        th.text("Timestamp", format_timestamp(hop.timestamp))


def _business(w: _Writer, b: Business) -> None:
    w.text("DocumentId", b.document_id)
    w.text("BussinessDocType", str(int(b.doc_type)))
    w.text("BussinessDocReason", b.reason)
    w.text("Paper", "1" if b.paper else "0")
    _staff(w.child("StaffInfo"), b.staff_info)
    if b.document_info is not None:
        info = w.child("BussinessDocumentInfo")
        info.text("DocumentInfo", "1" if b.document_info.document_info_changed else "0")
        info.text("DocumentReceiver", "1" if b.document_info.receivers_changed else "0")
        receivers = info.child("ReceiverList")
        for r in b.document_info.receivers:
            rw = receivers.child("Receiver")
            rw.text("OrganId", r.organ_id)
            rw.text("ReceiverType", str(r.receiver_type))
    if b.replacements:
        rlist = w.child("ReplacementInfoList")
        for rep in b.replacements:
            rw = rlist.child("ReplacementInfo")
            rw.text("DocumentId", rep.document_id)
            ids = rw.child("OrganIdList")
            for organ in rep.organ_ids:
                ids.text("OrganId", organ)


def _status_header(w: _Writer, m: StatusMessage) -> None:
    h = m.header
    _organization(w.child("From"), h.from_)
    _response_for(w.child("ResponseFor"), h.response_for)
    _staff(w.child("StaffInfo"), h.staff_info)
    w.text("StatusCode", h.status_code.code)
    w.text("Description", h.description)
    w.text("Timestamp", format_timestamp(h.timestamp))
