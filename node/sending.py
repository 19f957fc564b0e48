"""Sending (gửi): build the edXML, seal the PDFs, sign the envelope, keep it durably, queue it for the axis.

Nothing leaves from here: the outbox worker delivers what :func:`queue_signed` committed. A crash before the
commit loses only an unsent draft; after it, the envelope's bytes (and so its message id) are fixed and every
retry sends the same bytes, which the axis and the recipients recognise as the same message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.errors import AmbiguousDocumentError, NotFoundError, SendError
from node.events import record_event
from node.runtime import NodeRuntime
from schemas import (
    VIETNAM_TIME,
    BusinessDocType,
    DocumentMessage,
    Message,
    Organization,
    ResponseFor,
    StaffInfo,
    StatusCode,
    StatusHeader,
    StatusMessage,
    build_message,
)
from storage.exchange import EnvelopeRow, OutboxRow, StatusRow
from storage.objects import ObjectRef, content_key

RECALL = StatusCode.RECALL_REQUESTED
NO_STAFF = StaffInfo()


@dataclass(frozen=True)
class SendResult:
    """What was queued: the envelope row, its message id and whether it had been queued before."""

    envelope_id: int
    message_id: str
    document_id: str
    recipients: tuple[str, ...]
    duplicate: bool = False
    object_key: str = ""


def send_document(
    runtime: NodeRuntime,
    message: DocumentMessage,
    *,
    client_key: str | None = None,
    seal_pdfs: bool = True,
) -> SendResult:
    """Seal each PDF with the sender's organisation signature, sign the envelope, queue it."""
    sender = message.header.from_.organ_id
    runtime.organisation(sender)  # refuses an organisation this node does not serve
    if client_key is not None and (done := _already_queued(runtime, sender, client_key)) is not None:
        return done
    if seal_pdfs:
        message = _sealed(runtime, message)
    signed = _sign(runtime, sender, build_message(message))
    return queue_signed(runtime, signed, message, client_key=client_key)


def send_status(
    runtime: NodeRuntime,
    *,
    document_id: str,
    reporter: str,
    code: StatusCode,
    description: str = "",
    staff: StaffInfo = NO_STAFF,
    client_key: str | None = None,
    document_sender: str | None = None,
) -> SendResult:
    """Answer a received document with a status (03 registered … 06 done, 15/16), or recall a sent one (13).

    A DocumentId is chosen by its sender, so two senders can use the same one: ``document_sender`` names
    which document is answered, and is required only when ``reporter`` received that id from more than one.
    """
    runtime.organisation(reporter)
    if client_key is not None and (done := _already_queued(runtime, reporter, client_key)) is not None:
        return done
    with runtime.session() as s:
        if code == RECALL:
            doc = s.scalars(
                select(EnvelopeRow).where(
                    EnvelopeRow.direction == "out",
                    EnvelopeRow.kind == "document",
                    EnvelopeRow.document_id == document_id,
                    EnvelopeRow.sender == reporter,
                )
            ).first()
            what = f"no document {document_id} was sent by {reporter} from this node"
        else:
            query = select(EnvelopeRow).where(
                EnvelopeRow.direction == "in",
                EnvelopeRow.kind == "document",
                EnvelopeRow.document_id == document_id,
                EnvelopeRow.recipient == reporter,
            )
            if document_sender is not None:
                query = query.where(EnvelopeRow.sender == document_sender)
            received = s.scalars(query.order_by(EnvelopeRow.id)).all()
            senders = sorted({row.sender for row in received})
            if len(senders) > 1:
                raise AmbiguousDocumentError(
                    f"{reporter} received a document {document_id} from {len(senders)} senders "
                    f"({', '.join(senders)}): name the one answered"
                )
            doc = received[0] if received else None
            what = (
                f"{reporter} has received no document {document_id}"
                + (f" from {document_sender}" if document_sender is not None else "")
                + " on this node"
            )
        if doc is None:
            raise NotFoundError(what)
        doc_sender, doc_code = doc.sender, doc.code
    status = status_message(runtime, reporter, doc_sender, doc_code, document_id, code, description, staff)
    signed = sign_message(runtime, reporter, status)
    return queue_signed(runtime, signed, status, client_key=client_key)


def status_message(
    runtime: NodeRuntime,
    reporter: str,
    document_sender: str,
    document_code: str,
    document_id: str,
    code: StatusCode,
    description: str = "",
    staff: StaffInfo = NO_STAFF,
) -> StatusMessage:
    """The status message ``reporter`` sends about a document (thông báo trạng thái)."""
    org = runtime.organisation(reporter)
    return StatusMessage(
        header=StatusHeader.model_validate(
            {
                "from": Organization(organ_id=org.code, organ_name=org.name, organ_add=org.address, email=org.email),
                "response_for": ResponseFor(organ_id=document_sender, code=document_code, document_id=document_id),
                "staff_info": staff,
                "status_code": code,
                "description": description[:2000],
                "timestamp": datetime.now(VIETNAM_TIME),
            }
        )
    )


def sign_message(runtime: NodeRuntime, organisation: str, message: Message) -> bytes:
    """The envelope of ``message`` signed with ``organisation``'s seal (XAdES-T when a TSA is configured)."""
    return _sign(runtime, organisation, build_message(message))


def queue_signed(runtime: NodeRuntime, signed: bytes, message: Message, *, client_key: str | None = None) -> SendResult:
    """Keep the signed envelope and queue it for the upstream axis, in one transaction."""
    with runtime.session() as s:
        return queue_in(s, runtime, signed, message, client_key=client_key)


def queue_in(
    s: Session,
    runtime: NodeRuntime,
    signed: bytes,
    message: Message,
    *,
    client_key: str | None = None,
    stored: ObjectRef | None = None,
) -> SendResult:
    """Add the envelope and its outbox entry to the caller's transaction (stored bytes first: ``stored`` if the
    caller stored them already)."""
    upstream = runtime.upstream
    if upstream is None:
        raise SendError("this node has no upstream axis to send through")
    from node.archive import archive_envelope
    from signing.envelope import envelope_message_id

    message_id = envelope_message_id(signed)
    same = s.scalars(
        select(EnvelopeRow).where(EnvelopeRow.direction == "out", EnvelopeRow.message_id == message_id)
    ).first()
    if same is not None:
        # The same signed bytes are the same message, queued once: a status repeated within its timestamp's
        # second (two copies of a document received in one second are each answered 01) is byte for byte the
        # one already queued, since RSA PKCS#1 v1.5 signatures are deterministic.
        return SendResult(same.id, message_id, same.document_id, tuple(same.recipients), object_key=same.object_key)
    if stored is None:
        ref = runtime.objects.put(signed, document_class=_document_class(message), content_type="application/xml")
    elif stored.key == content_key(signed):
        ref = stored
    else:
        raise ValueError("queue_in: the stored object is not these bytes")
    fields = describe(message)
    if message.kind == "status" and message.header.status_code == RECALL:
        fields["recipients"] = _recipients_of_sent(s, message.header.response_for.document_id)
    row = EnvelopeRow(
        direction="out",
        message_id=message_id,
        object_key=ref.key,
        sha256=ref.sha256,
        size=len(signed),
        client_key=client_key,
        verified=None,
        **fields,
    )
    s.add(row)
    s.flush()
    s.add(OutboxRow(envelope_id=row.id, destination=upstream.node_id))
    runtime.mark_outbox(s)
    if message.kind == "status":
        s.add(status_row(message, message_id, "out"))
    record_event(
        runtime,
        "message.signed",
        session=s,
        message_id=message_id,
        sender=fields["sender"],
        recipients=fields["recipients"],
        document_id=fields["document_id"],
        kind=message.kind,
        status_code=fields.get("status_code"),
        object=ref.key,
    )
    archive_envelope(
        runtime,
        envelope_id=row.id,
        direction="out",
        message=message,
        message_id=message_id,
        object_key=ref.key,
        agency=message.header.from_.organ_id,
        session=s,
    )
    return SendResult(row.id, message_id, row.document_id, tuple(row.recipients), object_key=ref.key)


class MessageFields(TypedDict, total=False):
    """The columns of an envelope row that come from the message itself (see :func:`describe`)."""

    kind: str
    sender: str
    recipients: list[str]
    document_id: str
    subject: str
    code: str
    business_type: int
    links_to: str | None
    status_code: str


def document_code(message: DocumentMessage) -> str:
    """Số/ký hiệu as one string: ``245/BC-STC`` (or the number alone)."""
    c = message.header.code
    return f"{c.code_number}/{c.code_notation}" if c.code_notation else c.code_number


def describe(message: Message) -> MessageFields:
    """The columns of an envelope row that come from the message itself."""
    if message.kind == "document":
        h = message.header
        business = message.business
        links = None
        if business.doc_type in (BusinessDocType.UPDATE, BusinessDocType.REPLACEMENT, BusinessDocType.REVOCATION):
            links = next((r.document_id for r in business.replacements), None) or business.document_id
            if links == h.document_id and business.doc_type is not BusinessDocType.REVOCATION:
                links = next((r.document_id for r in h.response_for), links)
        return {
            "kind": "document",
            "sender": h.from_.organ_id,
            "recipients": [t.organ_id for t in h.to],
            "document_id": h.document_id,
            "subject": h.subject,
            "code": document_code(message),
            "business_type": int(business.doc_type),
            "links_to": links,
        }
    sh = message.header
    return {
        "kind": "status",
        "sender": sh.from_.organ_id,
        "recipients": [sh.response_for.organ_id],
        "document_id": sh.response_for.document_id,
        "subject": sh.description,
        "code": sh.response_for.code,
        "status_code": sh.status_code.code,
    }


def _document_class(message: Message) -> str:
    return "status" if message.kind == "status" else "document"


def _sign(runtime: NodeRuntime, organisation: str, unsigned: bytes) -> bytes:
    from signing.envelope import sign_envelope

    return sign_envelope(unsigned, runtime.seal_key(organisation), timestamper=runtime.timestamper)


def _sealed(runtime: NodeRuntime, message: DocumentMessage) -> DocumentMessage:
    """Each PDF with the organisation's seal, after the signer's signature if configured.

    PAdES B-T with a TSA (B-B without); with ``seal_level: B-LT``, B-LT: the OCSP responses and CRLs of the seal's
    chain (and the TSA's) are fetched and embedded, so the seal is checked from the document, not this node's evidence.
    """
    from signing.errors import SignError, TimestampError
    from signing.pdf import LongTermError, PdfSignOptions, SignatureRole, sign_pdf

    sender = message.header.from_.organ_id
    seal = runtime.pdf_key(sender, "seal")
    assert seal is not None
    signer = runtime.pdf_key(sender, "signer")
    stamper = runtime.timestamper.pyhanko if runtime.timestamper else None
    long_term = runtime.long_term_trust if runtime.settings.seal_level == "B-LT" else None
    attachments = []
    for attachment in message.attachments:
        if attachment.content_type == "application/pdf":
            pdf = attachment.data
            try:
                if signer is not None:
                    pdf = sign_pdf(pdf, signer, PdfSignOptions(role=SignatureRole.SIGNER))
                options = PdfSignOptions(
                    role=SignatureRole.ORGANISATION, organisation_name=message.header.from_.organ_name
                )
                pdf = sign_pdf(pdf, seal, options, timestamper=stamper, long_term=long_term)
            except (TimestampError, LongTermError):
                # the timestamp authority, the revocation responders or the seal's certificates, not the clerk's
                # file: the caller says the node cannot sign now
                raise
            except SignError as e:
                raise SendError(f"attachment {attachment.name!r} cannot be sealed: {e}") from e
            attachment = attachment.model_copy(update={"data": pdf})
        attachments.append(attachment)
    return message.model_copy(update={"attachments": tuple(attachments)})


def _already_queued(runtime: NodeRuntime, sender: str, client_key: str) -> SendResult | None:
    with runtime.session() as s:
        row = s.scalars(
            select(EnvelopeRow).where(
                EnvelopeRow.direction == "out", EnvelopeRow.sender == sender, EnvelopeRow.client_key == client_key
            )
        ).first()
        if row is None:
            return None
        return SendResult(row.id, row.message_id, row.document_id, tuple(row.recipients), duplicate=True)


def _recipients_of_sent(s: Session, document_id: str) -> list[str]:
    rows = s.scalars(
        select(EnvelopeRow.recipients).where(
            EnvelopeRow.direction == "out", EnvelopeRow.kind == "document", EnvelopeRow.document_id == document_id
        )
    ).all()
    return sorted({r for recipients in rows for r in recipients})


def status_row(message: StatusMessage, message_id: str, direction: str) -> StatusRow:
    """The status history row of a status message we sent (``out``) or received (``in``)."""
    h = message.header
    return StatusRow(
        document_id=h.response_for.document_id,
        document_sender=h.response_for.organ_id,
        reporter=h.from_.organ_id,
        status_code=h.status_code.code,
        description=h.description,
        staff=h.staff_info.staff,
        stated_at=h.timestamp,
        message_id=message_id,
        direction=direction,
    )
