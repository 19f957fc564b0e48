"""The workers: the outbox (hộp thư đi) delivers to the upstream axis, the inbox (hộp thư đến) pulls from it.

Delivery is at-least-once with idempotent receipt: the outbox retries with exponential backoff and jitter
until the axis says it has the envelope (or refuses it for good, or the message is older than the maximum
age: dead letter, with an alert); the inbox stores and answers before it acknowledges. Rows are claimed with
a lease so that several workers, threads or replicas never send the same row at the same time.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from sqlalchemy import or_, select, update

from adapters.errors import RetryableDeliveryError
from node.events import record_event
from node.runtime import NodeRuntime, Peer

if TYPE_CHECKING:
    from adapters.axis_client import AxisClient
from storage.exchange import EnvelopeRow, OutboxRow

log = logging.getLogger("lienthong.delivery")
LEASE = timedelta(seconds=60)
LONG_POLL = 10.0  # seconds the axis may hold an empty inbox request open: new mail is seen at once


def backoff_seconds(attempts: int, initial: float, maximum: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter between half and all of the step (never zero, never past max)."""
    step = min(maximum, initial * 2.0 ** max(0, attempts - 1))
    r: float = (rng or random).uniform(0.5, 1.0)
    return max(0.05, step * r)


@dataclass
class OutboxStats:
    sent: int = 0
    retried: int = 0
    dead: int = 0


def client_for(runtime: NodeRuntime, peer: Peer) -> AxisClient:
    from adapters.axis_client import AxisClient

    if peer.url is None:
        raise ValueError(f"no URL for node {peer.node_id}")
    return AxisClient(peer.url, runtime.node_key, peer.public_key, timeout=30.0, require_signed_errors=True)


def claim_due(runtime: NodeRuntime, limit: int) -> list[int]:
    """Lease up to ``limit`` due outbox rows to this worker; return their ids."""
    now = datetime.now(UTC)
    with runtime.session() as s:
        ids = s.scalars(
            select(OutboxRow.id)
            .where(
                OutboxRow.state == "pending",
                OutboxRow.next_attempt_at <= now,
                or_(OutboxRow.lease_until.is_(None), OutboxRow.lease_until < now),
            )
            .order_by(OutboxRow.next_attempt_at)
            .limit(limit)
        ).all()
        claimed = []
        for row_id in ids:
            done = s.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id == row_id,
                    OutboxRow.state == "pending",
                    or_(OutboxRow.lease_until.is_(None), OutboxRow.lease_until < now),
                )
                .values(lease_until=now + LEASE)
            )
            if done.rowcount:  # type: ignore[attr-defined]
                claimed.append(row_id)
    return claimed


def deliver_one(runtime: NodeRuntime, row_id: int, clients: dict[str, AxisClient]) -> str:
    """Try to hand one outbox row to its destination; return ``sent``, ``retry`` or ``dead``."""
    from adapters.errors import PermanentDeliveryError

    with runtime.session() as s:
        row = s.get(OutboxRow, row_id)
        assert row is not None
        envelope = s.get(EnvelopeRow, row.envelope_id)
        assert envelope is not None
        destination, attempts, created = row.destination, row.attempts, row.created_at
        key, message_id = envelope.object_key, envelope.message_id
    peer = runtime.peer(destination)
    now = datetime.now(UTC)
    error: str
    permanent = False
    retry_after = 0.0
    if peer is None:
        error, permanent = f"unknown destination node {destination}", True
    else:
        try:
            client = clients.get(destination)
            if client is None:
                client = clients[destination] = client_for(runtime, peer)
            receipt = client.send_envelope(runtime.objects.get(key), message_id)
        except PermanentDeliveryError as e:
            error, permanent = str(e), True
        except RetryableDeliveryError as e:
            error = str(e)
            retry_after = e.retry_after or 0.0  # the peer asked: never sooner
        else:
            with runtime.session() as s:
                s.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id == row_id)
                    .values(state="done", done_at=now, attempts=attempts + 1, lease_until=None, last_error=None)
                )
                record_event(
                    runtime,
                    "message.sent",
                    session=s,
                    message_id=message_id,
                    to=destination,
                    axis_status=receipt.status,
                    attempts=attempts + 1,
                )
            return "sent"
    delivery = runtime.settings.delivery
    too_old = (now - created).total_seconds() > delivery.max_age
    if permanent or too_old:
        with runtime.session() as s:
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id == row_id)
                .values(state="dead", attempts=attempts + 1, lease_until=None, last_error=error[:2000])
            )
        why = "refused" if permanent else f"older than {delivery.max_age:.0f}s"
        record_event(runtime, "delivery.dead", message_id=message_id, to=destination, why=why, error=error[:500])
        log.error("ALERT: message %s to %s is dead-lettered (%s): %s", message_id, destination, why, error)
        return "dead"
    wait = max(backoff_seconds(attempts + 1, delivery.initial_backoff, delivery.max_backoff), retry_after)
    with runtime.session() as s:
        s.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row_id)
            .values(
                attempts=attempts + 1,
                next_attempt_at=now + timedelta(seconds=wait),
                lease_until=None,
                last_error=error[:2000],
            )
        )
    log.info("message %s to %s: %s; retry in %.1fs", message_id[:16], destination, error, wait)
    return "retry"


class Worker(threading.Thread):
    """A loop that runs ``step`` until stopped; ``step`` returns True when it did work (then it loops at once)."""

    def __init__(self, name: str, step: Callable[[], bool], interval: float) -> None:
        super().__init__(name=name, daemon=True)
        self._step, self._interval = step, interval
        self._stop_event = threading.Event()
        self.wakeup = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                busy = self._step()
            except RetryableDeliveryError as e:  # the peer is down or slow: expected, said in one line
                log.warning("%s: %s", self.name, e)
                busy = False
            except Exception:  # a worker must survive anything one message does to it
                log.exception("%s: step failed", self.name)
                busy = False
            if not busy:
                self.wakeup.wait(self._interval)
                self.wakeup.clear()

    def stop(self) -> None:
        self._stop_event.set()
        self.wakeup.set()


def outbox_step(runtime: NodeRuntime, clients: dict[str, AxisClient]) -> bool:
    ids = claim_due(runtime, runtime.settings.delivery.batch)
    for row_id in ids:
        deliver_one(runtime, row_id, clients)
    return bool(ids)


def inbox_step(runtime: NodeRuntime, clients: dict[str, AxisClient]) -> bool:
    """Pull what the upstream axis holds for this node, receive it, acknowledge it."""
    upstream = runtime.upstream
    if upstream is None:
        return False
    client = clients.get(upstream.node_id)
    if client is None:
        client = clients[upstream.node_id] = client_for(runtime, upstream)
    items = client.inbox(runtime.settings.delivery.batch, wait=LONG_POLL)
    for item in items:
        fetched = client.fetch(item.delivery_id)
        outcome, reason = handle_incoming(runtime, fetched.data, item.message_id, item.recipient, upstream)
        client.ack(item.delivery_id, outcome, reason)
    return bool(items)


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


class Workers:
    """The node's background work: one outbox loop and, with an upstream axis, one inbox loop."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self.runtime = runtime
        interval = runtime.settings.delivery.poll_interval
        self._out_clients: dict[str, AxisClient] = {}
        self._in_clients: dict[str, AxisClient] = {}
        self.outbox = Worker("outbox", lambda: outbox_step(runtime, self._out_clients), interval)
        self.inbox = Worker("inbox", lambda: inbox_step(runtime, self._in_clients), interval)
        self.witness = Worker("witness", self._witness_step, runtime.settings.checkpoint_interval)

    def _witness_step(self) -> bool:
        from node.audit import publish_checkpoint
        from node.witnessing import PeerClient, witness_step

        upstream = self.runtime.upstream
        if upstream is None or upstream.url is None:
            publish_checkpoint(self.runtime)
            return False
        client = PeerClient(upstream.url, self.runtime.node_key, upstream.public_key, timeout=30.0)
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

    def poke(self) -> None:
        """Wake the outbox now (a message was just queued)."""
        self.outbox.wakeup.set()

    def stop(self) -> None:
        for worker in (self.outbox, self.inbox, self.witness):
            worker.stop()
        for worker in (self.outbox, self.inbox, self.witness):
            if worker.is_alive():
                # A long-poll may hold the inbox for seconds: nothing is lost by not waiting for it, the
                # delivery is acknowledged only after it is stored, so it comes again.
                worker.join(timeout=2)
        for client in [*self._out_clients.values(), *self._in_clients.values()]:
            client.close()
