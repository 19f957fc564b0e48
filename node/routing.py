"""The axis (trục): accept an envelope from a node, check it, add our hop to its route, fan it out.

An envelope is accepted only when its signature verifies, the node that handed it over may speak for its
``From`` organisation, every recipient can be reached (a node registered here, else the upstream axis),
and the route shows it has not been here before. Acceptance, the stored bytes and every delivery are one
transaction: the sender is answered only once nothing can be lost.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from node.archive import archive_envelope
from node.errors import NodeError
from node.events import record_event
from node.runtime import NodeRuntime, Peer
from node.sending import RECALL, MessageFields, describe
from schemas import VIETNAM_TIME, Message, TraceHeader, append_trace_header
from signing.envelope import envelope_message_id, verify_envelope
from signing.errors import SignError
from storage.exchange import DeliveryRow, EnvelopeRow, OutboxRow, RouteRow

MESSAGE_ID = re.compile(r"^[0-9a-f]{64}$")
# Quirks a tolerant reader survives but an axis must not pass on: a recipient could act on them.
REFUSED_QUIRKS = frozenset({"unsafe-attachment-name"})


class RefusedError(NodeError):
    """The envelope is refused; ``status`` is the HTTP status, ``slug`` names the problem type."""

    def __init__(self, status: int, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail = status, slug, detail


@dataclass(frozen=True)
class AcceptResult:
    message_id: str
    status: str  # accepted | duplicate
    recipients: tuple[str, ...]


def accept_envelope(runtime: NodeRuntime, data: bytes, *, message_id: str, from_node: Peer) -> AcceptResult:
    """Check and route one envelope handed over by ``from_node``; raise :class:`RefusedError` to refuse it."""
    try:
        return _accept(runtime, data, message_id, from_node)
    except RefusedError as e:
        record_event(
            runtime, "envelope.refused", message_id=message_id, node=from_node.node_id, reason=e.slug, detail=e.detail
        )
        raise


def _accept(runtime: NodeRuntime, data: bytes, message_id: str, from_node: Peer) -> AcceptResult:
    if not MESSAGE_ID.match(message_id):
        raise RefusedError(400, "bad-message-id", "Lienthong-Message-Id must be 64 lowercase hex digits")
    try:
        actual = envelope_message_id(data)
    except SignError as e:
        raise RefusedError(400, "malformed", str(e)) from None
    if actual != message_id:
        raise RefusedError(400, "bad-message-id", "Lienthong-Message-Id is not the SHA-256 of the signature value")
    done = _already_accepted(runtime, message_id)
    if done is not None:
        return done
    result = verify_envelope(data, runtime.trust, name=f"{message_id[:16]}.edxml")
    message = result.message
    if message is None:
        reasons = "; ".join(r for s in result.report.signatures for r in s.reasons) or "unreadable"
        raise RefusedError(422, "bad-signature", f"the envelope signature does not verify: {reasons}")
    if result.report.exit_code != 0:
        reasons = "; ".join(r for s in result.report.signatures for r in s.reasons)
        raise RefusedError(422, "bad-signature", f"the sender's signature is not valid: {reasons}")
    unsafe = [w for w, code in zip(result.warnings, result.warning_codes, strict=True) if code in REFUSED_QUIRKS]
    if unsafe:
        raise RefusedError(422, "unsafe-content", "; ".join(unsafe))
    fields = describe(message)
    sender = fields["sender"]
    if not from_node.serves(sender):
        raise RefusedError(403, "not-authorised", f"node {from_node.node_id} may not send for {sender}")
    me = runtime.settings.trace_id
    if any(hop.organ_id == me for hop in result.route):
        raise RefusedError(508, "loop", f"the route already passed through this axis ({me}): refusing a loop")
    if len(result.route) >= runtime.settings.max_hops:
        raise RefusedError(508, "too-many-hops", f"the route has {len(result.route)} hops already")

    with runtime.session() as s:
        plan = _plan(runtime, s, message, fields, from_node)
    routed = append_trace_header(data, TraceHeader(organ_id=me, timestamp=datetime.now(VIETNAM_TIME)))
    ref = runtime.objects.put(routed, document_class=fields["kind"], content_type="application/xml")
    recipients = tuple(sorted(plan))
    try:
        with runtime.session() as s:
            row = EnvelopeRow(
                direction="transit",
                message_id=message_id,
                object_key=ref.key,
                sha256=ref.sha256,
                size=len(routed),
                verified=result.report.indication.value,
                **{**fields, "recipients": list(recipients)},
            )
            s.add(row)
            s.flush()
            envelope_id = row.id
            forwarded = False
            # A sender may send a DocumentId again (a second copy, a corrected resend): its route is known.
            routed_before = (
                _routed_recipients(s, sender, message.header.document_id) if message.kind == "document" else set()
            )
            for recipient, via in sorted(plan.items()):
                if message.kind == "document" and recipient not in routed_before:
                    s.add(RouteRow(sender=sender, document_id=message.header.document_id, recipient=recipient, via=via))
                if runtime.upstream is not None and via == runtime.upstream.node_id:
                    if not forwarded:
                        s.add(OutboxRow(envelope_id=row.id, destination=via))
                        runtime.mark_outbox(s)
                        forwarded = True
                    continue
                s.add(
                    DeliveryRow(
                        delivery_id=secrets.token_urlsafe(18),
                        envelope_id=row.id,
                        message_id=message_id,
                        node_id=via,
                        sender=sender,
                        recipient=recipient,
                        kind=fields["kind"],
                    )
                )
            archive_envelope(
                runtime,
                envelope_id=envelope_id,
                direction="transit",
                message=message,
                message_id=message_id,
                object_key=ref.key,
                agency=sender,
                verified=result.report.indication.value,
                session=s,
            )
            record_event(
                runtime,
                "envelope.accepted",
                session=s,
                message_id=message_id,
                node=from_node.node_id,
                sender=sender,
                recipients=list(recipients),
                routes=dict(sorted(plan.items())),
                object=ref.key,
            )
    except IntegrityError:
        again = _already_accepted(runtime, message_id)
        if again is None:
            raise
        return again
    return AcceptResult(message_id, "accepted", recipients)


def _plan(runtime: NodeRuntime, s: Session, message: Message, fields: MessageFields, from_node: Peer) -> dict[str, str]:
    """recipient → the node id it goes to (a node registered here, or the upstream axis)."""
    targets: list[str]
    if message.kind == "status" and message.header.status_code == RECALL:
        # A recall travels where the document went; an axis that did not route it passes it up.
        h = message.header
        routes = s.execute(
            select(RouteRow.recipient, RouteRow.via).where(
                RouteRow.sender == h.from_.organ_id, RouteRow.document_id == h.response_for.document_id
            )
        ).all()
        if routes:
            return {r: via for r, via in routes}
        targets = fields.get("recipients", [])
        if runtime.upstream is None or runtime.upstream.node_id == from_node.node_id:
            raise RefusedError(
                404, "unknown-document", f"this axis did not route document {h.response_for.document_id}"
            )
        return {t: runtime.upstream.node_id for t in targets} or {h.response_for.organ_id: runtime.upstream.node_id}
    targets = fields["recipients"]
    plan: dict[str, str] = {}
    unknown: list[str] = []
    for target in targets:
        local = runtime.local_node_for(target)
        if local is not None and local.node_id == from_node.node_id:
            continue  # it came from there: the axis below has delivered to its own units already
        if local is not None:
            plan[target] = local.node_id
        elif runtime.upstream is not None and runtime.upstream.node_id != from_node.node_id:
            plan[target] = runtime.upstream.node_id
        else:
            unknown.append(target)
    if unknown:
        raise RefusedError(
            422, "unknown-recipient", f"no node is registered for {', '.join(unknown)} and there is no axis above"
        )
    return plan


def _routed_recipients(s: Session, sender: str, document_id: str) -> set[str]:
    query = select(RouteRow.recipient).where(RouteRow.sender == sender, RouteRow.document_id == document_id)
    return set(s.scalars(query).all())


def _already_accepted(runtime: NodeRuntime, message_id: str) -> AcceptResult | None:
    with runtime.session() as s:
        row = s.scalars(
            select(EnvelopeRow).where(EnvelopeRow.direction == "transit", EnvelopeRow.message_id == message_id)
        ).first()
        if row is None:
            return None
        return AcceptResult(message_id, "duplicate", tuple(row.recipients))


def sent_report(
    runtime: NodeRuntime, caller: Peer, message_ids: Sequence[str], now: datetime | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """What became of messages ``caller`` handed over, at this axis: per recipient, its delivery here (queued,
    done, failed, expired) or the forward to the parent axis (pending, done, dead) — and, for a forward the
    parent has, what the parent last said became of it there (``further``).

    Asking about a forward the parent has, whose fate there is not final yet, marks it (``fate_asked_at``): the
    follow-up worker then asks the parent (:func:`node.delivery.ask_parent_about_forwards`), and a later
    question here gets its answer. Only messages whose ``From`` the calling node may speak for — the check
    that let it hand them over — are answered; any other id is ``unknown``, exactly like an id this axis never
    saw, so nobody can probe. The upstream axis (which may speak for anyone) asks about nothing here.
    """
    wanted = list(dict.fromkeys(message_ids))
    me = runtime.settings.node_id
    now = now or datetime.now(UTC)
    with runtime.session() as s:
        envelopes = {
            e.id: e
            for e in s.scalars(
                select(EnvelopeRow).where(EnvelopeRow.direction == "transit", EnvelopeRow.message_id.in_(wanted))
            )
            if not caller.speaks_for_all and caller.serves(e.sender)
        }
        deliveries = s.scalars(
            select(DeliveryRow).where(DeliveryRow.envelope_id.in_(envelopes)).order_by(DeliveryRow.recipient)
        ).all()
        forwards = {o.envelope_id: o for o in s.scalars(select(OutboxRow).where(OutboxRow.envelope_id.in_(envelopes)))}
        found: dict[str, dict[str, Any]] = {}
        for envelope in envelopes.values():
            found[envelope.message_id] = {
                "message_id": envelope.message_id,
                "sender": envelope.sender,
                "accepted_at": envelope.created_at.isoformat(),
                "recipients": [],
            }
        for d in deliveries:
            found[envelopes[d.envelope_id].message_id]["recipients"].append(
                {
                    "recipient": d.recipient,
                    "at": me,
                    "state": d.state,  # queued | done | failed | expired
                    "node": d.node_id,
                    "forward": None,
                    "reason": d.outcome_reason,
                    "since": (d.acked_at or d.created_at).isoformat(),
                    "further": None,
                }
            )
        to_ask: list[int] = []
        for envelope_id, forward in forwards.items():
            envelope = envelopes[envelope_id]
            answer = found[envelope.message_id]
            here = {r["recipient"] for r in answer["recipients"]}
            said = (forward.fate or []) if forward.state == "done" else []
            parent_said = {f.get("recipient"): f for f in said if isinstance(f, dict)}
            for recipient in sorted(set(envelope.recipients) - here):
                answer["recipients"].append(
                    {
                        "recipient": recipient,
                        "at": me,
                        "state": "forwarded",
                        "node": forward.destination,
                        "forward": forward.state,  # pending | done | dead
                        "reason": forward.last_error,
                        "since": (forward.done_at or forward.created_at).isoformat(),
                        "further": parent_said.get(recipient),  # the parent's answer, when it was asked
                    }
                )
            if forward.state == "done" and forward.fate_settled_at is None and forward.fate_asked_at is None:
                to_ask.append(forward.id)
        if to_ask:  # the follow-up worker asks the parent about these (once a check interval at most)
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(to_ask), OutboxRow.fate_asked_at.is_(None))
                .values(fate_asked_at=now)
                .execution_options(synchronize_session=False)
            )
    return [found[m] for m in wanted if m in found], [m for m in wanted if m not in found]
