"""The workers: the outbox (hộp thư đi) delivers to the upstream axis, the inbox (hộp thư đến) pulls from it.

Delivery is at-least-once with idempotent receipt: the outbox retries with exponential backoff and jitter
until the axis says it has the envelope (or refuses it for good, or the message is older than the maximum
age: dead letter, with an alert); the inbox stores and answers before it acknowledges. Rows are claimed with
a lease so that several workers, threads or replicas never send the same row at the same time.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import BindParameter, CursorResult, and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from adapters.axis_client import Ack, AxisClient, InboxItem, SendOutcome, SendReceipt, SentRecipient
from adapters.errors import PermanentDeliveryError, RetryableDeliveryError
from node.events import log_safe, record_event
from node.runtime import NodeRuntime, Peer
from storage.db import UtcDateTime
from storage.exchange import DeliveryRow, EnvelopeRow, OutboxRow, StatusRow

log = logging.getLogger("lienthong.delivery")
LEASE = timedelta(seconds=60)
LONG_POLL = 10.0  # seconds the axis may hold an empty inbox request open: new mail is seen at once
# Envelopes travel in batches of at most this many bytes when several are waiting: one signed request
# for many envelopes, and one acknowledgement for many deliveries.
BATCH_BYTES = 8 * 1024 * 1024


def backoff_seconds(attempts: int, initial: float, maximum: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter between half and all of the step (never zero, never past max).

    The exponent is capped: after days of retries ``2.0 ** attempts`` overflows a float (from attempt 1025),
    and an exception here would leave the row leased and retried every lease, never dead-lettered.
    """
    step = min(maximum, initial * 2.0 ** min(max(0, attempts - 1), 64))
    r: float = (rng or random).uniform(0.5, 1.0)
    return max(0.05, step * r)


@dataclass
class OutboxStats:
    sent: int = 0
    retried: int = 0
    dead: int = 0


def client_for(runtime: NodeRuntime, peer: Peer) -> AxisClient:
    if peer.url is None:
        raise ValueError(f"no URL for node {peer.node_id}")
    return AxisClient(
        peer.url, runtime.node_key, peer.public_key, peer_id=peer.node_id, timeout=30.0, require_signed_errors=True
    )


def cached_client(runtime: NodeRuntime, clients: dict[str, AxisClient], peer: Peer) -> AxisClient:
    """The worker's client for ``peer``, made on first use (:func:`client_for`) and kept in ``clients``."""
    client = clients.get(peer.node_id)
    if client is None:
        client = clients[peer.node_id] = client_for(runtime, peer)
    return client


def claim_due(runtime: NodeRuntime, limit: int) -> list[int]:
    """Lease up to ``limit`` due outbox rows to this worker; return their ids.

    One statement: the conditions are checked again on every row it updates, so two workers (threads or
    replicas) never lease the same row.
    """
    now = datetime.now(UTC)
    with runtime.session() as s:
        return sorted(s.scalars(_claim_statement(limit), {"now": now, "until": now + LEASE}).all())


@functools.lru_cache(maxsize=8)
def _claim_statement(limit: int) -> Any:
    # Built once: the outbox worker asks this every time it wakes, and building the statement costs more
    # than running it on an empty outbox.
    now: BindParameter[datetime] = bindparam("now", type_=UtcDateTime())
    free = or_(OutboxRow.lease_until.is_(None), OutboxRow.lease_until < now)
    due = (
        select(OutboxRow.id)
        .where(OutboxRow.state == "pending", OutboxRow.next_attempt_at <= now, free)
        .order_by(OutboxRow.next_attempt_at)
        .limit(limit)
    )
    return (
        update(OutboxRow)
        .where(OutboxRow.id.in_(due.scalar_subquery()), OutboxRow.state == "pending", free)
        .values(lease_until=bindparam("until", type_=UtcDateTime()))
        .returning(OutboxRow.id)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class _Due:
    """An outbox row claimed for sending, with what sending it needs."""

    row_id: int
    destination: str
    attempts: int
    created: datetime
    object_key: str
    message_id: str
    lease: datetime | None  # the lease this worker holds: settling the row is its business only while it holds it


def _load_due(runtime: NodeRuntime, row_ids: list[int]) -> list[_Due]:
    with runtime.session() as s:
        rows = s.execute(
            select(OutboxRow, EnvelopeRow)
            .join(EnvelopeRow, EnvelopeRow.id == OutboxRow.envelope_id)
            .where(OutboxRow.id.in_(row_ids), OutboxRow.state == "pending")
            .order_by(OutboxRow.id)
        ).all()
        return [
            _Due(o.id, o.destination, o.attempts, o.created_at, e.object_key, e.message_id, o.lease_until)
            for o, e in rows
        ]


def _rows(s: Session, statement: Any) -> int:
    """How many rows an UPDATE changed."""
    return int(cast("CursorResult[Any]", s.execute(statement)).rowcount)


def _still_ours(d: _Due) -> Any:
    """The row is still pending under the lease ``d`` was loaded with: no other worker re-claimed it since.

    A send can outlast its lease (several 8 MiB chunks, each with a 30 s timeout; a stalled process); another
    worker or replica then re-claims the row and may settle it first. The late worker must not overwrite
    that (a ``dead`` over a ``done``, an older error, a shorter backoff)."""
    held = OutboxRow.lease_until.is_(None) if d.lease is None else OutboxRow.lease_until == d.lease
    return and_(OutboxRow.id == d.row_id, OutboxRow.state == "pending", held)


def deliver_many(runtime: NodeRuntime, row_ids: list[int], clients: dict[str, AxisClient]) -> dict[int, str]:
    """Hand claimed outbox rows to their destinations, a batch per destination; ``sent``/``retry``/``dead`` each
    (``stale`` for a row whose lease ran out and that another worker settled or re-claimed meanwhile).

    One envelope goes alone (``POST /envelopes``); several go in one request (``POST /envelopes/batch``) of at
    most :data:`BATCH_BYTES`, each still accepted or refused on its own.
    """
    due = _load_due(runtime, row_ids)
    outcomes: dict[int, SendOutcome] = {}
    by_destination: dict[str, list[_Due]] = {}
    for d in due:
        by_destination.setdefault(d.destination, []).append(d)
    for destination, group in by_destination.items():
        peer = runtime.peer(destination)
        if peer is None:
            for d in group:
                outcomes[d.row_id] = PermanentDeliveryError(f"unknown destination node {destination}", status=0)
            continue
        try:
            client = cached_client(runtime, clients, peer)
        except ValueError as e:  # a configuration the operator can correct: retried, dead at the maximum age
            for d in group:
                outcomes[d.row_id] = RetryableDeliveryError(str(e))
            continue
        for chunk in _chunks(runtime, group, outcomes):
            try:
                if len(chunk) == 1:
                    data, d = chunk[0]
                    answers: list[SendOutcome] = [client.send_envelope(data, d.message_id)]
                else:
                    answers = client.send_envelopes([(data, d.message_id) for data, d in chunk])
            except (PermanentDeliveryError, RetryableDeliveryError) as e:
                answers = [e] * len(chunk)
            for (_, d), answer in zip(chunk, answers, strict=True):
                outcomes[d.row_id] = answer
    return _settle(runtime, due, outcomes)


def _chunks(
    runtime: NodeRuntime, group: list[_Due], outcomes: dict[int, SendOutcome]
) -> list[list[tuple[bytes, _Due]]]:
    chunks: list[list[tuple[bytes, _Due]]] = [[]]
    size = 0
    for d in group:
        try:
            data = runtime.objects.get(d.object_key)
        except Exception as e:  # one unreadable envelope must not hold up the rest of the outbox
            # Not sent, so retried with backoff (an object store that is down comes back) and dead-lettered
            # with an alert at the maximum age; before, the exception left every row of the claim leased, and
            # the same row, due first again, failed every claim after: nothing left the outbox any more.
            log.exception("message %s: its envelope cannot be read from the object store", d.message_id[:16])
            outcomes[d.row_id] = RetryableDeliveryError(f"the envelope cannot be read: {type(e).__name__}: {e}")
            continue
        if chunks[-1] and size + len(data) > BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append((data, d))
        size += len(data)
    return [c for c in chunks if c]


def _settle(runtime: NodeRuntime, due: list[_Due], outcomes: Mapping[int, SendOutcome]) -> dict[int, str]:
    """Record each row's outcome: sent rows in one transaction, the others row by row."""
    now = datetime.now(UTC)
    delivery = runtime.settings.delivery
    result: dict[int, str] = {}
    sent = [d for d in due if isinstance(outcomes.get(d.row_id), SendReceipt)]
    if sent:
        with runtime.session() as s:
            for d in sent:
                receipt = outcomes[d.row_id]
                assert isinstance(receipt, SendReceipt)
                result[d.row_id] = "sent"
                # The axis holds it: true whoever holds the lease now, so not conditional on it; but recorded
                # once, when two workers sent it (a lease that expired mid-send) only the first says so.
                done = _rows(
                    s,
                    update(OutboxRow)
                    .where(OutboxRow.id == d.row_id, OutboxRow.state != "done")
                    .values(state="done", done_at=now, attempts=d.attempts + 1, lease_until=None, last_error=None),
                )
                if not done:
                    continue
                record_event(
                    runtime,
                    "message.sent",
                    session=s,
                    message_id=d.message_id,
                    to=d.destination,
                    axis_status=receipt.status,
                    attempts=d.attempts + 1,
                )
    for d in due:
        if d.row_id in result:
            continue
        error = outcomes.get(d.row_id)
        permanent = isinstance(error, PermanentDeliveryError)
        # the peer asked: never sooner
        retry_after = (error.retry_after or 0.0) if isinstance(error, RetryableDeliveryError) else 0.0
        text = str(error) if error is not None else "no answer for this envelope"
        too_old = (now - d.created).total_seconds() > delivery.max_age
        if permanent or too_old:
            with runtime.session() as s:
                settled = _rows(
                    s,
                    update(OutboxRow)
                    .where(_still_ours(d))
                    .values(state="dead", attempts=d.attempts + 1, lease_until=None, last_error=text[:2000]),
                )
            if not settled:
                result[d.row_id] = "stale"  # re-claimed by another worker meanwhile: its outcome stands
                continue
            why = "refused" if permanent else f"older than {delivery.max_age:.0f}s"
            record_event(runtime, "delivery.dead", message_id=d.message_id, to=d.destination, why=why, error=text[:500])
            log.error(
                "ALERT: message %s to %s is dead-lettered (%s): %s", d.message_id, d.destination, why, log_safe(text)
            )
            result[d.row_id] = "dead"
            continue
        wait = max(backoff_seconds(d.attempts + 1, delivery.initial_backoff, delivery.max_backoff), retry_after)
        with runtime.session() as s:
            settled = _rows(
                s,
                update(OutboxRow)
                .where(_still_ours(d))
                .values(
                    attempts=d.attempts + 1,
                    next_attempt_at=now + timedelta(seconds=wait),
                    lease_until=None,
                    last_error=text[:2000],
                ),
            )
        if not settled:
            result[d.row_id] = "stale"
            continue
        log.info("message %s to %s: %s; retry in %.1fs", d.message_id[:16], d.destination, log_safe(text), wait)
        result[d.row_id] = "retry"
    return result


class Worker(threading.Thread):
    """A loop that runs ``step`` until stopped; ``step`` returns True when it did work (then it loops at once)."""

    def __init__(
        self, name: str, step: Callable[[], bool], interval: float, wakeup: threading.Event | None = None
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._step, self._interval = step, interval
        self._stop_event = threading.Event()
        self.wakeup = wakeup or threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            # Cleared before the step, not after the wait: a wakeup that comes during the step is kept.
            self.wakeup.clear()
            try:
                busy = self._step()
            except RetryableDeliveryError as e:  # the peer is down or slow: expected, said in one line
                log.warning("%s: %s", self.name, log_safe(e))
                busy = False
            except PermanentDeliveryError as e:  # the peer refuses us (a key or id to correct): one line, no trace
                log.error("%s: %s", self.name, log_safe(e))
                busy = False
            except Exception:  # a worker must survive anything one message does to it
                log.exception("%s: step failed", self.name)
                busy = False
            if not busy:
                self.wakeup.wait(self._interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.wakeup.set()


def outbox_step(runtime: NodeRuntime, clients: dict[str, AxisClient]) -> bool:
    ids = claim_due(runtime, runtime.settings.delivery.batch)
    if ids:
        deliver_many(runtime, ids, clients)
    return bool(ids)


# A delivery whose handling raises (a bug, an input no check foresaw) is a poison message: it is skipped,
# so the rest of the batch goes on, and tried again with backoff; it is acknowledged ``fail`` (with an alert)
# only once it failed this many times over at least this long while other deliveries were received after its
# first failure, which shows the node itself works. A node that cannot receive anything (its database is
# down) fails every delivery alike, and gives up on none of them.
POISON_ATTEMPTS = 5
POISON_AFTER = 600.0  # seconds
POISON_BACKOFF = 60.0  # the longest wait between two tries of a failing delivery
MAX_REMEMBERED_FAILURES = 1000


@dataclass
class _Failure:
    attempts: int
    first: float  # time.monotonic() of the first failure: a clock jump does not make a message poison
    retry_at: float
    error: str


@dataclass
class InboxMemory:
    """What the inbox worker remembers between its steps: the deliveries that failed, and the last success."""

    failures: dict[str, _Failure] = field(default_factory=dict)
    last_success: float = float("-inf")


def inbox_step(
    runtime: NodeRuntime, clients: dict[str, AxisClient], pending: list[Ack], memory: InboxMemory | None = None
) -> bool:
    """Pull what the upstream axis holds for this node, receive it; return whether anything was received.

    ``pending`` holds the acknowledgements of what the last step received: they travel with the next
    listing (``POST /inbox``), one round trip per batch, and are replaced by this step's. ``memory`` keeps
    the deliveries that failed across steps (see :data:`POISON_ATTEMPTS`).
    """
    upstream = runtime.upstream
    if upstream is None:
        return False
    memory = memory if memory is not None else InboxMemory()
    client = cached_client(runtime, clients, upstream)
    batch = runtime.settings.delivery.batch
    if pending:
        runtime.sync_committed()  # what "done" acknowledges must survive a power loss: one sync per batch
    items, unknown = client.next_batch(pending, batch, wait=LONG_POLL, inline=BATCH_BYTES)
    if unknown:
        log.warning(
            "the axis did not know deliveries %s: acknowledged elsewhere, or not ours", log_safe(", ".join(unknown))
        )
    acks: list[Ack] = []
    try:
        with runtime.outbox_held():
            for item in items:
                failed = memory.failures.get(item.delivery_id)
                if failed is not None and time.monotonic() < failed.retry_at:
                    continue  # it failed a moment ago: its turn comes again later, the others go on now
                data = item.data if item.data is not None else client.fetch(item.delivery_id).data
                try:
                    outcome, reason = handle_incoming(runtime, data, item.message_id, item.recipient, upstream)
                except Exception as e:  # one message that makes the node raise must not stop the others
                    if _poisoned(runtime, memory, item, upstream, e):
                        acks.append(
                            Ack(item.delivery_id, "fail", f"the recipient node cannot process it: {e!r}"[:1000])
                        )
                    continue
                memory.last_success = time.monotonic()
                memory.failures.pop(item.delivery_id, None)
                acks.append(Ack(item.delivery_id, outcome, reason))
    finally:
        # What was stored is acknowledged even if a later item failed; the rest is listed again.
        pending[:] = acks
    # Only failing deliveries in the listing: not busy, so the worker waits its interval before asking again.
    return bool(acks)


def _poisoned(runtime: NodeRuntime, memory: InboxMemory, item: InboxItem, via: Peer, error: Exception) -> bool:
    """Count a failure of ``item``; whether it is now given up on (acknowledged ``fail``, with an alert)."""
    now = time.monotonic()
    failed = memory.failures.get(item.delivery_id) or _Failure(0, now, now, "")
    failed.attempts += 1
    failed.error = repr(error)[:500]
    failed.retry_at = now + min(POISON_BACKOFF, 2.0 ** min(failed.attempts, 16))
    memory.failures[item.delivery_id] = failed
    if len(memory.failures) > MAX_REMEMBERED_FAILURES:  # mostly deliveries settled elsewhere since: the oldest go
        for key in sorted(memory.failures, key=lambda k: memory.failures[k].first)[: MAX_REMEMBERED_FAILURES // 2]:
            del memory.failures[key]
    log.exception(
        "delivery %s (message %s) failed %d time(s); the others go on",
        item.delivery_id,
        item.message_id[:16],
        failed.attempts,
    )
    poison = (
        failed.attempts >= POISON_ATTEMPTS and now - failed.first >= POISON_AFTER and memory.last_success > failed.first
    )
    if not poison:
        return False
    memory.failures.pop(item.delivery_id, None)
    record_event(
        runtime,
        "delivery.dead",
        message_id=item.message_id,
        recipient=item.recipient,
        via=via.node_id,
        why="cannot be processed",
        attempts=failed.attempts,
        error=failed.error,
    )
    log.error(
        "ALERT: delivery %s of message %s is acknowledged 'fail' after %d failures: %s",
        item.delivery_id,
        item.message_id,
        failed.attempts,
        log_safe(failed.error),
    )
    return True


def handle_incoming(
    runtime: NodeRuntime, data: bytes, message_id: str, recipient: str, via: Peer
) -> tuple[Literal["done", "fail"], str | None]:
    """Receive (agency) or route on (axis) one envelope pulled from ``via``; return the ack outcome."""
    from node.errors import NotFoundError
    from node.routing import RefusedError, accept_envelope

    if runtime.settings.role == "axis":
        try:
            accept_envelope(runtime, data, message_id=message_id, from_node=via)
        except RefusedError as e:
            return "fail", f"{e.slug}: {e.detail}"
        return "done", None
    from node.receiving import receive_envelope

    try:
        outcome = receive_envelope(runtime, data, message_id=message_id, recipient=recipient)
    except NotFoundError as e:
        return "fail", str(e)
    if not outcome.accepted:
        return "fail", "; ".join(outcome.reasons)[:1000]
    return "done", None


# -- what became of a message after the first hop ----------------------------------------------------------
EXPIRY_BATCH = 500  # deliveries expired in one transaction
FATE_BATCH = 100  # copies asked about in one request (POST /exchange/sent)


def expire_deliveries(runtime: NodeRuntime, now: datetime | None = None) -> int:
    """On an axis: settle as ``expired`` the deliveries queued longer than the maximum age; return how many.

    A node that never fetches again (decommissioned, a wrong key) would otherwise leave them queued forever,
    and their senders waiting for a 01 that cannot come. Each is expired once (a conditional update: of two
    replicas sweeping at once, one takes each row), with a ``delivery.dead`` event and an ALERT; the sender
    learns it by asking (``GET /exchange/sent/{message_id}``). An acknowledgement that comes later changes
    nothing, as for any settled delivery.
    """
    now = now or datetime.now(UTC)
    max_age = runtime.settings.delivery.max_age
    cutoff = now - timedelta(seconds=max_age)
    total = 0
    while True:
        with runtime.session() as s:
            due = (
                select(DeliveryRow.id)
                .where(DeliveryRow.state == "queued", DeliveryRow.created_at < cutoff)
                .order_by(DeliveryRow.id)
                .limit(EXPIRY_BATCH)
            )
            expired = s.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id.in_(due.scalar_subquery()), DeliveryRow.state == "queued")
                .values(
                    state="expired",
                    acked_at=now,
                    outcome_reason=f"not fetched and acknowledged by its node within {max_age:.0f}s",
                )
                .returning(DeliveryRow.delivery_id, DeliveryRow.message_id, DeliveryRow.node_id, DeliveryRow.recipient)
                .execution_options(synchronize_session=False)
            ).all()
            for delivery_id, message_id, node_id, recipient in expired:
                record_event(
                    runtime,
                    "delivery.dead",
                    session=s,
                    message_id=message_id,
                    recipient=recipient,
                    node=node_id,
                    delivery=delivery_id,
                    why=f"not fetched within {max_age:.0f}s",
                )
        for delivery_id, message_id, node_id, recipient in expired:
            log.error(
                "ALERT: delivery %s of message %s for %s expired: node %s did not fetch it within %.0fs",
                delivery_id,
                message_id,
                recipient,
                node_id,
                max_age,
            )
        total += len(expired)
        if len(expired) < EXPIRY_BATCH:
            return total


def answered_by(s: Session, document_id: str, sender: str) -> set[str]:
    """The organisations that answered ``sender``'s document ``document_id`` with 01 or 02 (they have it)."""
    query = select(StatusRow.reporter).where(
        StatusRow.document_id == document_id,
        StatusRow.document_sender == sender,
        StatusRow.direction == "in",
        StatusRow.status_code.in_(("01", "02")),
    )
    return set(s.scalars(query).all())


def fate_failed(entry: dict[str, Any]) -> bool:
    """An axis's word (``SentRecipient`` as JSON) that the message will not reach this recipient: here, or
    further up when the parent axis has it (``further``, what the parent said)."""
    return SentRecipient.model_validate(entry).failed


def fate_text(entry: dict[str, Any]) -> str:
    """``failed at truc-tw for 000.00.00.G12: <reason>``: one failed recipient, in one line; a forward the
    parent axis has says so first (``forwarded to truc-tw: failed at truc-tw for …``)."""
    return _fate_text(SentRecipient.model_validate(entry))


def _fate_text(entry: SentRecipient) -> str:
    if entry.handed_on and entry.further is not None:
        return f"forwarded to {entry.node}: {_fate_text(entry.further)}"
    where = f"at {entry.at} for {entry.recipient}"
    reason = entry.reason or "no reason given"
    if entry.state == "forwarded":
        return f"not forwarded {where} to {entry.node}: {reason}"
    return f"{entry.state} {where}: {reason}"


# Statuses a clerk sends (03–06, recall 13 and its answers 15/16) are followed up like documents: nobody answers
# a status, so one is "unanswered" until the axis says it reached its recipient. 01/02 are not: the node sends
# one for every document it receives, and the document's sender learns from the document's own follow-up.
FOLLOWED_STATUSES = ("03", "04", "05", "06", "13", "15", "16")


def _due(settings: Any, now: datetime) -> Any:
    """Not asked about within the last ``answer_check_interval``."""
    return or_(
        OutboxRow.fate_checked_at.is_(None),
        OutboxRow.fate_checked_at <= now - timedelta(seconds=settings.answer_check_interval),
    )


def _claim_fates(s: Session, candidates: Any, due: Any, now: datetime) -> list[int]:
    """The ``candidates`` (a select of outbox row ids), marked asked about now; the ``due`` condition is checked
    again on every row, so replicas do not both ask."""
    ids = list(s.scalars(candidates).all())
    if not ids:
        return []
    return list(
        s.scalars(
            update(OutboxRow)
            .where(OutboxRow.id.in_(ids), due)
            .values(fate_checked_at=now, fate_asked_at=None)
            .returning(OutboxRow.id)
            .execution_options(synchronize_session=False)
        ).all()
    )


def ask_about_unanswered(runtime: NodeRuntime, clients: dict[str, AxisClient], now: datetime | None = None) -> int:
    """On an agency node: ask the axis what became of delivered documents some recipient did not answer,
    and of delivered statuses (:data:`FOLLOWED_STATUSES`), which nobody answers.

    Only copies delivered to the axis at least ``answer_wait`` ago and not yet settled, each at most once per
    ``answer_check_interval`` (claimed by setting ``fate_checked_at`` first, so replicas do not both ask), up
    to :data:`FATE_BATCH` in one request. The answer is kept on the outbox row (``sent_copies`` shows it); a
    recipient newly reported failed gets a ``message.undelivered`` event and an ALERT. A copy is settled —
    not asked about again — once every unanswered recipient's state is final (for a copy the axis forwarded,
    once its parent's answer is), or when it is older than twice the maximum age (by then every axis has
    expired or dead-lettered anything still open). Returns how many copies were asked about.
    """
    upstream = runtime.upstream
    if upstream is None:
        return 0
    settings = runtime.settings.delivery
    now = now or datetime.now(UTC)
    delivered_before = now - timedelta(seconds=settings.answer_wait)
    horizon = delivered_before - timedelta(seconds=2 * settings.max_age)
    due = _due(settings, now)
    with runtime.session() as s:
        candidates = (
            select(OutboxRow.id)
            .join(EnvelopeRow, EnvelopeRow.id == OutboxRow.envelope_id)
            .where(
                OutboxRow.state == "done",
                OutboxRow.destination == upstream.node_id,
                OutboxRow.fate_settled_at.is_(None),
                OutboxRow.done_at <= delivered_before,
                EnvelopeRow.direction == "out",
                or_(
                    EnvelopeRow.kind == "document",
                    and_(EnvelopeRow.kind == "status", EnvelopeRow.status_code.in_(FOLLOWED_STATUSES)),
                ),
                due,
            )
            .order_by(OutboxRow.done_at)
            .limit(FATE_BATCH)
        )
        claimed = _claim_fates(s, candidates, due, now)
        if not claimed:
            return 0

        def unanswered(envelope: EnvelopeRow) -> set[str]:
            waiting = set(envelope.recipients)
            if envelope.kind == "document":
                waiting -= answered_by(s, envelope.document_id, envelope.sender)
            return waiting

        copies = _to_ask(s, claimed, unanswered, horizon, now)
    return _ask(runtime, clients, upstream, copies, now, alert=True)


def ask_parent_about_forwards(runtime: NodeRuntime, clients: dict[str, AxisClient], now: datetime | None = None) -> int:
    """On an axis with a parent: ask it what became of copies this axis forwarded to it that a child node asked
    about (``sent_report`` marks them), so the next answer to the child says what the parent says.

    Driven by the children's questions only: a forward is asked about when a child asked since this axis last
    asked the parent, at most once per ``answer_check_interval``, up to :data:`FATE_BATCH` in one request, and
    no more once the parent's answer is final for every recipient it forwarded (or the copy is older than
    twice the maximum age). The parent's answer may itself hold its own parent's (it asks in turn when asked),
    so an answer travels one axis down per question and nothing loops: an axis asks its parent only, the top
    axis asks nobody. Returns how many copies were asked about.
    """
    upstream = runtime.upstream
    if upstream is None or runtime.settings.role != "axis":
        return 0
    settings = runtime.settings.delivery
    now = now or datetime.now(UTC)
    horizon = now - timedelta(seconds=settings.answer_wait + 2 * settings.max_age)
    due = and_(OutboxRow.fate_asked_at.is_not(None), _due(settings, now))
    with runtime.session() as s:
        candidates = (
            select(OutboxRow.id)
            .where(
                OutboxRow.state == "done",
                OutboxRow.destination == upstream.node_id,
                OutboxRow.fate_settled_at.is_(None),
                due,
            )
            .order_by(OutboxRow.fate_asked_at)
            .limit(FATE_BATCH)
        )
        claimed = _claim_fates(s, candidates, due, now)
        if not claimed:
            return 0

        def forwarded(envelope: EnvelopeRow) -> set[str]:
            if envelope.direction != "transit":
                return set()
            here = s.scalars(select(DeliveryRow.recipient).where(DeliveryRow.envelope_id == envelope.id)).all()
            return set(envelope.recipients) - set(here)

        copies = _to_ask(s, claimed, forwarded, horizon, now)
    return _ask(runtime, clients, upstream, copies, now, alert=False)


def _to_ask(
    s: Session, claimed: list[int], waiting_for: Callable[[EnvelopeRow], set[str]], horizon: datetime, now: datetime
) -> dict[str, _Asked]:
    """The claimed copies worth a question, by message id, with the recipients still ``waiting_for``; the others
    are settled (nobody left to wait for, or older than ``horizon``: nothing more can change) and not asked again."""
    copies: dict[str, _Asked] = {}
    for outbox, envelope in s.execute(
        select(OutboxRow, EnvelopeRow)
        .join(EnvelopeRow, EnvelopeRow.id == OutboxRow.envelope_id)
        .where(OutboxRow.id.in_(claimed))
    ).all():
        waiting = waiting_for(envelope)
        too_old = outbox.done_at is not None and outbox.done_at < horizon
        if not waiting or too_old:
            outbox.fate_settled_at = now
            continue
        copies[envelope.message_id] = _Asked(outbox.id, waiting, list(outbox.fate or []))
    return copies


@dataclass(frozen=True)
class _Asked:
    row_id: int
    unanswered: set[str]  # the recipients whose fate is asked about
    before: list[dict[str, Any]]  # the last answer kept


def _ask(
    runtime: NodeRuntime,
    clients: dict[str, AxisClient],
    upstream: Peer,
    copies: dict[str, _Asked],
    now: datetime,
    *,
    alert: bool,
) -> int:
    if not copies:
        return 0
    client = cached_client(runtime, clients, upstream)
    reports, unknown = client.sent_many(list(copies))
    if unknown:
        log.warning(
            "the axis %s does not know messages %s that it accepted from this node",
            upstream.node_id,
            log_safe(", ".join(m[:16] for m in unknown)),
        )
    for report in reports:
        asked = copies[report.message_id]
        _record_fate(runtime, asked, report.message_id, list(report.recipients), now, alert=alert)
    return len(copies)


def _failure_key(entry: SentRecipient) -> tuple[object, ...]:
    """Who failed where: the last axis that knows (``further``'s), so a report is alerted once."""
    deepest = entry.deepest()
    return (entry.recipient, deepest.at, deepest.state, deepest.forward)


def _record_fate(
    runtime: NodeRuntime,
    asked: _Asked,
    message_id: str,
    entries: list[SentRecipient],
    now: datetime,
    *,
    alert: bool,
) -> None:
    fate = [e.model_dump(mode="json") for e in entries]
    pending = [e for e in entries if e.recipient in asked.unanswered]
    settled = {e.recipient for e in pending if e.final} >= asked.unanswered
    before = [SentRecipient.model_validate(b) for b in asked.before]
    known_failures = {_failure_key(b) for b in before if b.failed}
    new_failures = [e for e in pending if e.failed and _failure_key(e) not in known_failures]
    with runtime.session() as s:
        s.execute(
            update(OutboxRow)
            .where(OutboxRow.id == asked.row_id)
            .values(fate=fate, fate_settled_at=now if settled else None)
            .execution_options(synchronize_session=False)
        )
        if not alert:  # an axis keeps the parent's answer for its child: the sender's node alerts
            return
        for e in new_failures:
            last = e.deepest()  # where it failed; ``via`` the axis that forwarded it there, if not the same
            via = {"via": e.at} if last is not e else {}
            record_event(
                runtime,
                "message.undelivered",
                session=s,
                message_id=message_id,
                recipient=e.recipient,
                at=last.at,
                state=last.state,
                forward=last.forward,
                reason=(last.reason or "")[:500],
                **via,
            )
    for e in new_failures:  # after the commit; only with ``alert`` (returned above without it)
        log.error("ALERT: message %s will not reach %s: %s", message_id, e.recipient, log_safe(_fate_text(e)))


def follow_up_step(runtime: NodeRuntime, clients: dict[str, AxisClient]) -> bool:
    """An axis expires what its nodes never fetched and asks its parent about the forwards its children asked
    about; an agency node asks its axis about unanswered copies."""
    if runtime.settings.role == "axis":
        expire_deliveries(runtime)
        return ask_parent_about_forwards(runtime, clients) >= FATE_BATCH
    return ask_about_unanswered(runtime, clients) >= FATE_BATCH  # a full batch: more may be due at once


class Workers:
    """The node's background work: one outbox loop and, with an upstream axis, one inbox loop."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self.runtime = runtime
        interval = runtime.settings.delivery.poll_interval
        self._out_clients: dict[str, AxisClient] = {}
        self._in_clients: dict[str, AxisClient] = {}
        self.outbox = Worker(
            "outbox", lambda: outbox_step(runtime, self._out_clients), interval, wakeup=runtime.outbox_ready
        )
        self._acks: list[Ack] = []
        self._inbox_memory = InboxMemory()
        self.inbox = Worker(
            "inbox", lambda: inbox_step(runtime, self._in_clients, self._acks, self._inbox_memory), interval
        )
        self.witness = Worker("witness", self._witness_step, runtime.settings.checkpoint_interval)
        delivery = runtime.settings.delivery
        # often enough that an expiry or an answer is seen soon after it is due; each look is one indexed query
        follow_up_every = max(interval, min(60.0, delivery.answer_check_interval, delivery.max_age / 10))
        self._follow_up_clients: dict[str, AxisClient] = {}
        self.follow_up = Worker("follow-up", lambda: follow_up_step(runtime, self._follow_up_clients), follow_up_every)

    def _witness_step(self) -> bool:
        from node.audit import publish_checkpoint
        from node.witnessing import PeerClient, witness_step

        upstream = self.runtime.upstream
        if upstream is None or upstream.url is None:
            publish_checkpoint(self.runtime)
            return False
        client = PeerClient(
            upstream.url, self.runtime.node_key, upstream.public_key, peer_id=upstream.node_id, timeout=30.0
        )
        try:
            witness_step(self.runtime, client)
        finally:
            client.close()
        return False

    def start(self) -> None:
        self.outbox.start()
        self.witness.start()
        if self.runtime.upstream is not None:
            self.inbox.start()
        if self.runtime.settings.role == "axis" or self.runtime.upstream is not None:
            self.follow_up.start()

    def stop(self) -> None:
        for worker in (self.outbox, self.inbox, self.witness, self.follow_up):
            worker.stop()
        for worker in (self.outbox, self.inbox, self.witness, self.follow_up):
            if worker.is_alive():
                # A long-poll may hold the inbox for seconds: nothing is lost by not waiting for it, the
                # delivery is acknowledged only after it is stored, so it comes again.
                worker.join(timeout=2)
        for client in [*self._out_clients.values(), *self._in_clients.values(), *self._follow_up_clients.values()]:
            client.close()
