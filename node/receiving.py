"""Receiving (nhận): verify an envelope fully, keep its exact bytes and the report, answer 01 or 02.

Receipt is idempotent: the same message for the same recipient is stored once, however often the axis
delivers it (after a crash, a lost acknowledgement, or a duplicate push). The stored row, the report and
the automatic answer are committed together, so a crash never leaves a document without its answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from node.archive import archive_envelope, store_evidence
from node.errors import NotFoundError
from node.events import record_event
from node.routing import REFUSED_QUIRKS
from node.runtime import NodeRuntime
from node.sending import RECALL, describe, document_code, queue_in, sign_message, status_message, status_row
from schemas import Message, StatusCode, StatusMessage
from signing.envelope import EnvelopeVerification, envelope_message_id, verify_envelope
from signing.errors import SignError
from signing.pdf import verify_pdf
from storage.exchange import EnvelopeRow, StatusRow
from storage.objects import ObjectPut, put_all

MAX_REASON = 1000


@dataclass(frozen=True)
class ReceiveOutcome:
    """What became of one delivered envelope."""

    envelope_id: int | None
    kind: str
    indication: str
    duplicate: bool = False
    answered: str | None = None  # the automatic status sent back: "01" or "02"
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def accepted(self) -> bool:
        return self.envelope_id is not None


def verify_received(runtime: NodeRuntime, data: bytes, name: str = "envelope") -> EnvelopeVerification:
    trust = runtime.trust
    return verify_envelope(data, trust, name=name, verify_pdf=lambda n, d: verify_pdf(n, d, trust))


def receive_envelope(runtime: NodeRuntime, data: bytes, *, message_id: str, recipient: str) -> ReceiveOutcome:
    """Verify, store and answer one envelope delivered for ``recipient`` (an organisation this node serves)."""
    if recipient not in runtime.organisations:
        raise NotFoundError(f"this node does not receive for {recipient}")
    existing = _existing(runtime, message_id, recipient)
    if existing is not None:
        # The axis says this message was received already: believed only if the envelope is that message,
        # or an axis could have a new envelope dropped as a "duplicate" of an old one.
        try:
            actual: str | None = envelope_message_id(data)
        except SignError:
            actual = None
        if actual == message_id:
            return existing
        return _misnamed(runtime, message_id, actual, recipient)
    result = verify_received(runtime, data, name=f"{message_id[:16]}.edxml")
    if result.message_id is not None and result.message_id != message_id:
        return _misnamed(runtime, message_id, result.message_id, recipient)
    report = result.report
    indication = report.indication.value
    reasons = tuple(r for s in report.signatures for r in s.reasons)[:10]
    message = result.message
    if message is None:
        # Nothing signed can be read, so there is no sender to answer: the axis is told (ack "fail").
        record_event(runtime, "verification.failed", message_id=message_id, recipient=recipient, reasons=list(reasons))
        return ReceiveOutcome(None, "unknown", indication, reasons=reasons or ("the envelope cannot be read",))
    # The axis's word on the recipient is believed only if the signed header agrees, as with the message id.
    to = addressees(message)
    if to is not None and recipient not in to:
        return _misaddressed(runtime, message_id, message, recipient, to, indication)

    passed = report.exit_code == 0
    unsafe = [w for w, code in zip(result.warnings, result.warning_codes, strict=True) if code in REFUSED_QUIRKS]
    if unsafe:
        passed, reasons = False, (*unsafe, *reasons)
    answer = None
    puts = [
        ObjectPut(report.model_dump_json().encode(), "report", "application/json"),
        ObjectPut(data, message.kind, "application/xml"),
    ]
    if message.kind == "document":
        code = StatusCode.ARRIVED if passed else StatusCode.REFUSED
        why = "" if passed else "; ".join(reasons)[:MAX_REASON] or "the signatures do not verify"
        h = message.header
        answer = status_message(runtime, recipient, h.from_.organ_id, document_code(message), h.document_id, code, why)
        answer_bytes = sign_message(runtime, recipient, answer)
        puts.append(ObjectPut(answer_bytes, "status", "application/xml"))
    # The report, the envelope and the answer are stored together (their syncs overlap), all before the
    # transaction that names them; none is stored while the database is locked for writing.
    report_ref, ref, *answer_ref = put_all(runtime.objects, puts)
    evidence = store_evidence(runtime, report)
    try:
        with runtime.session() as s:
            unrelated = _unrelated(s, message, recipient) if message.kind == "status" and passed else None
            in_history = passed and unrelated is None
            # Statuses can arrive out of order (a 03 retried for hours arrives after the 05): each joins the
            # history, ordered by when it was stated, but only the newest stated is the archive's latest.
            latest = in_history and message.kind == "status" and _newest_stated(s, message)
            row = EnvelopeRow(
                direction="in",
                message_id=message_id,
                recipient=recipient,
                object_key=ref.key,
                sha256=ref.sha256,
                size=len(data),
                verified=indication,
                report_key=report_ref.key,
                **describe(message),
            )
            s.add(row)
            s.flush()
            if message.kind == "status" and in_history:
                s.add(status_row(message, message_id, "in"))
            envelope_id = row.id
            archive_envelope(
                runtime,
                envelope_id=envelope_id,
                direction="in",
                message=message,
                message_id=message_id,
                object_key=ref.key,
                agency=recipient,
                verified=indication,
                report_key=report_ref.key,
                evidence_keys=evidence,
                updates_status=latest,
                session=s,
            )
            if answer is not None:
                queue_in(s, runtime, answer_bytes, answer, stored=answer_ref[0])
            record_event(
                runtime,
                "message.received",
                session=s,
                message_id=message_id,
                recipient=recipient,
                sender=message.header.from_.organ_id,
                kind=message.kind,
                indication=indication,
                object=ref.key,
                report=report_ref.key,
            )
            if not passed:
                record_event(
                    runtime,
                    "verification.failed",
                    session=s,
                    message_id=message_id,
                    recipient=recipient,
                    reasons=list(reasons),
                )
            if message.kind == "status" and unrelated is not None:
                _record_unrelated(runtime, s, message, message_id, recipient, unrelated)
                reasons = (unrelated, *reasons)
    except IntegrityError:
        # Another worker stored the same delivery between our check and our commit.
        again = _existing(runtime, message_id, recipient)
        if again is None:
            raise
        return again
    return ReceiveOutcome(
        envelope_id,
        message.kind,
        indication,
        answered=answer.header.status_code.code if answer is not None else None,
        reasons=reasons,
    )


def _misnamed(runtime: NodeRuntime, claimed: str, actual: str | None, recipient: str) -> ReceiveOutcome:
    """The delivery names the envelope by another message's id: refused, nothing stored."""
    reason = f"the delivery names message {claimed} but the envelope is {actual or 'not a signed envelope'}"
    record_event(runtime, "verification.failed", message_id=claimed, recipient=recipient, reasons=[reason])
    return ReceiveOutcome(None, "unknown", "TOTAL_FAILED", reasons=(reason,))


def addressees(message: Message) -> tuple[str, ...] | None:
    """The organisations a signed message is addressed to; None for a recall (13), which names none: it goes
    wherever its document went, so whether it is for us is decided by :func:`_unrelated`."""
    if message.kind == "document":
        return tuple(t.organ_id for t in message.header.to)
    if message.header.status_code == RECALL:
        return None
    # any other status answers a document, and is for the organisation that sent that document
    return (message.header.response_for.organ_id,)


def _misaddressed(
    runtime: NodeRuntime, message_id: str, message: Message, recipient: str, to: tuple[str, ...], indication: str
) -> ReceiveOutcome:
    """The axis delivers for ``recipient`` what its sender addressed to others: this node is no party to it, so
    it neither keeps it nor answers it (a 01/02 from us would claim a document that was never ours)."""
    reason = f"the envelope is addressed to {', '.join(to)}, not to {recipient}"
    record_event(
        runtime,
        "verification.failed",
        message_id=message_id,
        recipient=recipient,
        addressees=list(to),
        reasons=[reason],
    )
    return ReceiveOutcome(None, message.kind, indication, reasons=(reason,))


def _unrelated(s: Session, message: StatusMessage, recipient: str) -> str | None:
    """Why the status's sender is no party of its document on this node, or None if it is one.

    Only a recipient of a document reports on it to its sender, and only its sender recalls it from a recipient.
    """
    h = message.header
    reporter, document = h.from_.organ_id, h.response_for
    if h.status_code == RECALL:
        held = s.scalars(
            select(EnvelopeRow.id).where(
                EnvelopeRow.direction == "in",
                EnvelopeRow.kind == "document",
                EnvelopeRow.document_id == document.document_id,
                EnvelopeRow.recipient == recipient,
                EnvelopeRow.sender == reporter,
            )
        ).first()
        if held is None or document.organ_id != reporter:
            return f"{recipient} received no document {document.document_id} from {reporter}, who recalls it"
        return None
    sent = s.scalars(
        select(EnvelopeRow.recipients).where(
            EnvelopeRow.direction == "out",
            EnvelopeRow.kind == "document",
            EnvelopeRow.document_id == document.document_id,
            EnvelopeRow.sender == document.organ_id,
        )
    ).all()
    if not any(reporter in to for to in sent):
        return f"{document.organ_id} sent no document {document.document_id} to {reporter}, who reports on it"
    return None


def _newest_stated(s: Session, message: StatusMessage) -> bool:
    """Whether ``message`` was stated no earlier than every status of its document recorded so far."""
    h = message.header
    newest = s.scalar(
        select(func.max(StatusRow.stated_at)).where(
            StatusRow.document_id == h.response_for.document_id, StatusRow.document_sender == h.response_for.organ_id
        )
    )
    if newest is None:
        return True
    if newest.tzinfo is None:  # SQLite keeps naive UTC text, and an aggregate skips the column's type
        newest = newest.replace(tzinfo=UTC)
    return bool(h.timestamp >= newest)


def _record_unrelated(
    runtime: NodeRuntime, s: Session, message: StatusMessage, message_id: str, recipient: str, reason: str
) -> None:
    """A validly signed status from an organisation that is no party of the document: received, but left out
    of the document's status history and the archive's latest status, which only its parties may change.

    Received rather than refused, as an eDelivery access point receipts a well-addressed, validly signed message
    and leaves business checks to the application: it was addressed to us and its signature binds its sender to
    it, so its bytes are the evidence an auditor needs (a "fail" acknowledgement would have the axis drop them),
    and receiving it again changes nothing (it is a duplicate, not a new event)."""
    h = message.header
    record_event(
        runtime,
        "status.unrelated",
        session=s,
        message_id=message_id,
        recipient=recipient,
        sender=h.from_.organ_id,
        document_id=h.response_for.document_id,
        status_code=h.status_code.code,
        reason=reason,
    )


def _existing(runtime: NodeRuntime, message_id: str, recipient: str) -> ReceiveOutcome | None:
    with runtime.session() as s:
        row = s.scalars(
            select(EnvelopeRow).where(
                EnvelopeRow.direction == "in", EnvelopeRow.message_id == message_id, EnvelopeRow.recipient == recipient
            )
        ).first()
        if row is None:
            return None
        return ReceiveOutcome(row.id, row.kind, row.verified or "", duplicate=True)
