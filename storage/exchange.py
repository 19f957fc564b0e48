"""Tables of the exchange: envelopes, the outbox, the axis's deliveries, status history, API tokens, nonces.

``storage`` knows rows, not edXML: organisation codes, document ids and status codes are plain strings
here; the ``node`` package gives them meaning. Envelope bytes live in the object store; rows keep their key.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, UtcDateTime


def utcnow() -> datetime:
    return datetime.now(UTC)


class EnvelopeRow(Base):
    """One envelope as this node holds it (gói tin): sent, received, or routed through (axis).

    ``message_id`` is the SHA-256 of the envelope as its sender signed it; it stays the same across hops
    and retries, and with ``recipient`` it is what makes receipt idempotent.
    """

    __tablename__ = "envelopes"
    __table_args__ = (
        UniqueConstraint("direction", "message_id", "recipient", name="uq_envelope_direction_message_recipient"),
        Index("ix_envelopes_document", "document_id"),
        UniqueConstraint("direction", "sender", "client_key", name="uq_envelope_client_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    direction: Mapped[str] = mapped_column(String(8))  # out | in | transit
    kind: Mapped[str] = mapped_column(String(8))  # document | status
    message_id: Mapped[str] = mapped_column(String(64))
    sender: Mapped[str] = mapped_column(String(35))
    recipient: Mapped[str] = mapped_column(String(35), default="")  # in: who it was for; out/transit: ""
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    document_id: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(Text, default="")
    code: Mapped[str] = mapped_column(String(200), default="")
    business_type: Mapped[int | None] = mapped_column(Integer, nullable=True)
    links_to: Mapped[str | None] = mapped_column(String(200), nullable=True)  # update/replacement: the original
    status_code: Mapped[str | None] = mapped_column(String(2), nullable=True)  # status messages
    object_key: Mapped[str] = mapped_column(String(100))
    client_key: Mapped[str | None] = mapped_column(String(100), nullable=True)  # the sender's idempotency key
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    verified: Mapped[str | None] = mapped_column(String(20), nullable=True)  # indication, when verified here
    report_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class OutboxRow(Base):
    """An envelope waiting to go to a peer (hộp thư đi), with its retry state."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("envelope_id", "destination", name="uq_outbox_envelope_destination"),
        Index("ix_outbox_due", "state", "next_attempt_at"),
        Index("ix_outbox_state_done", "state", "done_at"),  # delivered copies still waiting for an answer
        Index("ix_outbox_fate_asked", "fate_asked_at"),  # on an axis: forwards a child asked about since
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    envelope_id: Mapped[int] = mapped_column(ForeignKey("envelopes.id"))
    destination: Mapped[str] = mapped_column(String(63))  # a node id (the upstream axis, or a pushed-to node)
    state: Mapped[str] = mapped_column(String(10), default="pending")  # pending | done | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # A delivered copy no recipient answered: what the axis said became of it, per recipient (its answer to
    # ``GET /exchange/sent/{message_id}``), when it was asked, and when nothing more could change (not asked again).
    fate: Mapped[list[dict[str, object]] | None] = mapped_column(JSON, nullable=True)
    fate_checked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    fate_settled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # On an axis, a copy forwarded to its parent: when a child node first asked about it since this axis last
    # asked the parent (None: nobody did); ``fate`` is then the parent's answer, which the child is told.
    fate_asked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class DeliveryRow(Base):
    """On an axis: an envelope waiting for the node serving one recipient to fetch and acknowledge it."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("message_id", "recipient", name="uq_delivery_message_recipient"),
        Index("ix_deliveries_node_state_id", "node_id", "state", "id"),  # the inbox, read in id order
        Index("ix_deliveries_state_created", "state", "created_at"),  # the expiry sweep
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(40), unique=True)
    envelope_id: Mapped[int] = mapped_column(ForeignKey("envelopes.id"))
    message_id: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str] = mapped_column(String(63))
    sender: Mapped[str] = mapped_column(String(35))
    recipient: Mapped[str] = mapped_column(String(35))
    kind: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(10), default="queued")  # queued | done | failed | expired
    outcome_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    acked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)  # or expired at


class RouteRow(Base):
    """On an axis: where a document went, so that a recall (13) travels the same way."""

    __tablename__ = "routes"
    __table_args__ = (UniqueConstraint("sender", "document_id", "recipient", name="uq_route"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender: Mapped[str] = mapped_column(String(35))
    document_id: Mapped[str] = mapped_column(String(200))
    recipient: Mapped[str] = mapped_column(String(35))
    via: Mapped[str] = mapped_column(String(63))  # the node id it went to (a local node or the upstream axis)


class StatusRow(Base):
    """One status of a document as one organisation reported it (lịch sử trạng thái)."""

    __tablename__ = "statuses"
    __table_args__ = (
        UniqueConstraint("message_id", name="uq_status_message"),
        Index("ix_statuses_document", "document_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[str] = mapped_column(String(200))
    document_sender: Mapped[str] = mapped_column(String(35))
    reporter: Mapped[str] = mapped_column(String(35))  # who sent the status
    status_code: Mapped[str] = mapped_column(String(2))
    description: Mapped[str] = mapped_column(Text, default="")
    staff: Mapped[str] = mapped_column(Text, default="")
    stated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    message_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8))  # in (someone told us) | out (we said it)


class ApiTokenRow(Base):
    """An API token: only its SHA-256 is kept; the role limits what it may do."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    token_sha256: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class NonceRow(Base):
    """A request-signature nonce already seen, kept until the signature would have expired anyway."""

    __tablename__ = "nonces"

    key_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(100), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class CosignatureRow(Base):
    """A witness's cosignature of one of this node's checkpoints (C2SP tlog-cosignature line)."""

    __tablename__ = "cosignatures"
    __table_args__ = (UniqueConstraint("checkpoint_size", "witness", name="uq_cosignature"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_size: Mapped[int] = mapped_column(Integer)
    witness: Mapped[str] = mapped_column(String(63))
    line: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
