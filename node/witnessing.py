"""Witnessing between a node and its axis, both ways, at every checkpoint.

The node publishes a checkpoint and hands it to its axis with a consistency proof from the last size the
axis cosigned; the axis (a :class:`storage.witness.Witness`) cosigns only if the log grew without being
rewritten, so a node that rewrote its history is caught at its next checkpoint. The node keeps the axis's
checkpoints the same way: it asks for the latest with a proof from the last one it saw and refuses a fork.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from sqlalchemy import select

from adapters.axis_client import AxisClient
from node.audit import publish_checkpoint
from node.events import log_safe, record_event
from node.runtime import NodeRuntime
from storage.errors import WitnessRefusal
from storage.exchange import CosignatureRow

log = logging.getLogger("lienthong.witness")


class PeerClient(AxisClient):
    """The axis client, with the witnessing calls."""

    def witness(self, checkpoint: str, proof: list[bytes]) -> str:
        body = json.dumps({"checkpoint": checkpoint, "proof": [base64.b64encode(p).decode() for p in proof]})
        _, answer, _ = self._call(
            "POST",
            "/api/v1/exchange/witness",
            what="asking the axis to cosign",
            expect=(200,),
            content=body.encode(),
            headers={"content-type": "application/json"},
        )
        return str(json.loads(answer)["cosignature"])

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
            proof = runtime.audit.consistency_proof(last, checkpoint.size) if last else []
            line = client.witness(checkpoint.note, proof)
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
