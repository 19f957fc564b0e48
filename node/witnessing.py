"""Witnessing between a node and its axis, both ways, at every checkpoint.

The node publishes a checkpoint and hands it to its axis with a consistency proof from the last size the
axis cosigned; the axis (a :class:`storage.witness.Witness`) cosigns only if the log grew without being
rewritten, so a node that rewrote its history is caught at its next checkpoint. The node keeps the axis's
checkpoints the same way: it asks for the latest with a proof from the last one it saw and refuses a fork.

The node says from which size its proof goes (``old_size``, the ``old`` line of c2sp.org/tlog-witness): if the
axis cosigned a later checkpoint whose answer never came back, it answers 409 ``witness-conflict`` with its
size and the node sends a proof from there, instead of being judged forked forever. A cosignature line is
checked against the axis's witness key before it is kept: a line that does not verify is never served.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from sqlalchemy import select

from adapters.axis_client import AxisClient
from node.audit import publish_checkpoint, witness_verifier_key
from node.events import log_safe, record_event
from node.runtime import NodeRuntime
from storage.auditlog import StoredCheckpoint
from storage.checkpoint import NoteVerifier, verify_cosignature
from storage.errors import CheckpointError, WitnessRefusal
from storage.exchange import CosignatureRow
from storage.witness import WitnessConflict

log = logging.getLogger("lienthong.witness")


class PeerClient(AxisClient):
    """The axis client, with the witnessing calls."""

    def witness(self, checkpoint: str, proof: list[bytes], old_size: int = 0) -> str:
        """The axis's cosignature line; :class:`WitnessConflict` when it last cosigned another size than
        ``old_size``, :class:`WitnessRefusal` when it refuses the checkpoint."""
        body = json.dumps(
            {"checkpoint": checkpoint, "proof": [base64.b64encode(p).decode() for p in proof], "old_size": old_size}
        )
        status, answer, _ = self._call(
            "POST",
            "/api/v1/exchange/witness",
            what="asking the axis to cosign",
            expect=(200, 409),
            content=body.encode(),
            headers={"content-type": "application/json"},
        )
        value = json.loads(answer)
        if status == 409:
            detail = str(value.get("detail", "the axis refused to cosign"))
            size = value.get("size")
            if str(value.get("type", "")).endswith(":witness-conflict") and type(size) is int and size >= 0:
                raise WitnessConflict(detail, size)
            raise WitnessRefusal(detail)
        return str(value["cosignature"])

    def checkpoint(self, first: int | None) -> dict[str, Any]:
        params: dict[str, str | int | float] = {"from": first} if first else {}
        _, answer, _ = self._call(
            "GET", "/api/v1/exchange/checkpoint", what="fetching the axis checkpoint", expect=(200,), params=params
        )
        value = json.loads(answer)
        assert isinstance(value, dict)
        return value


def last_cosigned_size(runtime: NodeRuntime, witness: str) -> int:
    with runtime.session() as s:
        sizes = s.scalars(
            select(CosignatureRow.checkpoint_size)
            .where(CosignatureRow.witness == witness)
            .order_by(CosignatureRow.checkpoint_size.desc())
            .limit(1)
        ).all()
    return sizes[0] if sizes else 0


def witness_step(runtime: NodeRuntime, client: PeerClient) -> None:
    """One round: our checkpoint cosigned by the axis, the axis's checkpoint checked by us."""
    upstream = runtime.upstream
    assert upstream is not None
    checkpoint = publish_checkpoint(runtime)
    if checkpoint.size > 0:
        last = last_cosigned_size(runtime, upstream.node_id)
        if checkpoint.size > last:
            line = _cosigned_line(runtime, client, checkpoint, last)
            with runtime.session() as s:
                s.add(CosignatureRow(checkpoint_size=checkpoint.size, witness=upstream.node_id, line=line))
    origin = f"lienthong/{upstream.node_id}"
    seen = runtime.witness.last_seen(origin)
    theirs = client.checkpoint(seen[0] if seen else None)
    vkey = runtime.log_verifier_key(upstream.node_id)
    assert vkey is not None
    proof = [base64.b64decode(p) for p in theirs.get("proof", [])]
    try:
        runtime.witness.cosign(str(theirs["checkpoint"]), proof, vkey)
    except WitnessRefusal as e:
        record_event(runtime, "witness.refused", node=upstream.node_id, reason=str(e))
        log.error("ALERT: the axis %s presented an inconsistent log: %s", upstream.node_id, log_safe(e))


def _cosigned_line(runtime: NodeRuntime, client: PeerClient, checkpoint: StoredCheckpoint, last: int) -> str:
    """The axis's cosignature line for ``checkpoint``, checked against its witness key; ``last`` is the size the
    node believes the axis cosigned last (one retry from the axis's own size when it says otherwise)."""
    upstream = runtime.upstream
    assert upstream is not None

    def ask(old: int) -> str:
        proof = runtime.audit.consistency_proof(old, checkpoint.size) if old else []
        return client.witness(checkpoint.note, proof, old)

    try:
        line = ask(last)
    except WitnessConflict as e:
        if not 0 <= e.known_size <= checkpoint.size:
            # the axis cosigned more of this log than it holds now: the log lost entries it had published
            record_event(runtime, "witness.refused", node=upstream.node_id, reason=str(e))
            log.error(
                "ALERT: the axis %s cosigned size %d of this log, which now has %d",
                upstream.node_id,
                e.known_size,
                checkpoint.size,
            )
            raise
        line = ask(e.known_size)
    vkey = witness_verifier_key(runtime, upstream.node_id)
    if vkey is None:
        raise WitnessRefusal(f"the axis {upstream.node_id} has no registered key to check its cosignature with")
    text = line if line.endswith("\n") else line + "\n"
    try:
        verify_cosignature(checkpoint.note + text, NoteVerifier.from_vkey(vkey))
    except CheckpointError as e:
        raise WitnessRefusal(f"the axis {upstream.node_id} answered a cosignature that does not verify: {e}") from e
    return text
