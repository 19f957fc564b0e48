"""The node's audit trail as auditors use it: checkpoints, proofs, offline verification, the events view.

The log itself (RFC 9162 tree, C2SP checkpoints, witnesses) is :mod:`storage.auditlog`; this module ties it
to the node: checkpoints are signed with the node key, archived objects named by events are re-hashed when
the log is verified, and notable events (failed authentication, refused envelopes, failed verifications,
dead letters, unusual archive reads) are flagged in the events view.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from node.events import NOTABLE
from node.runtime import NodeRuntime
from storage.auditlog import StoredCheckpoint, verify_log
from storage.checkpoint import COSIGNATURE_V1, NoteVerifier
from storage.errors import AuditLogError, CheckpointError, StorageError
from storage.merkle import verify_consistency, verify_inclusion

OBJECT_FIELDS = ("object", "report")


def publish_checkpoint(runtime: NodeRuntime) -> StoredCheckpoint:
    """Sign a checkpoint of the log as it is now (a new one only when the log grew)."""
    latest = runtime.audit.latest_checkpoint()
    if latest is not None and latest.size == runtime.audit.size():
        return latest
    return runtime.audit.checkpoint(runtime.log_signer)


@dataclass(frozen=True)
class CosignedCheckpoint:
    """A checkpoint of this log as a witness cosigned it: the node's note followed by the witnesses' lines."""

    size: int
    note: str
    witnesses: tuple[str, ...]  # the node ids of the witnesses whose lines the note carries


def latest_cosigned(runtime: NodeRuntime, *, at_most: int | None = None) -> CosignedCheckpoint | None:
    """The latest checkpoint a witness cosigned, of at most ``at_most`` entries; None before the first.

    The node's own stored notes carry only its signature; cosignatures come back later and are kept apart.
    ``at_most`` keeps to a checkpoint already taken (an export's): the witness worker may meanwhile get a
    later one cosigned, from which no consistency proof leads back.
    """
    from sqlalchemy import select

    from storage.exchange import CosignatureRow

    with runtime.session() as s:
        query = select(CosignatureRow.checkpoint_size)
        if at_most is not None:
            query = query.where(CosignatureRow.checkpoint_size <= at_most)
        size = s.scalars(query.order_by(CosignatureRow.checkpoint_size.desc())).first()
        if size is None:
            return None
        rows = s.execute(
            select(CosignatureRow.witness, CosignatureRow.line)
            .where(CosignatureRow.checkpoint_size == size)
            .order_by(CosignatureRow.id)
        ).all()
    note = next((c.note for c in reversed(runtime.audit.checkpoints()) if c.size == size), None)
    if note is None:
        raise AuditLogError(f"a witness cosigned the checkpoint of size {size}, which the log no longer holds")
    lines = "".join(line if line.endswith("\n") else line + "\n" for _, line in rows)
    return CosignedCheckpoint(size, note + lines, tuple(dict.fromkeys(witness for witness, _ in rows)))


def cosigned_checkpoint(runtime: NodeRuntime) -> str | None:
    """The latest checkpoint a witness cosigned, as a note with the witnesses' lines; None before the first."""
    found = latest_cosigned(runtime)
    return None if found is None else found.note


def witness_verifier_key(runtime: NodeRuntime, node_id: str) -> str | None:
    """The verifier key (type 0x04) with which ``node_id`` cosigns checkpoints, from its registered public key."""
    public = runtime.public_key_of(node_id)
    return None if public is None else NoteVerifier(f"lienthong-witness/{node_id}", COSIGNATURE_V1, public).vkey()


def checkpoint_json(checkpoint: StoredCheckpoint) -> dict[str, Any]:
    return {
        "size": checkpoint.size,
        "root_hash": base64.b64encode(checkpoint.root_hash).decode(),
        "note": checkpoint.note,
        "created_at": checkpoint.created_at.isoformat(),
    }


def inclusion(runtime: NodeRuntime, index: int, size: int | None = None) -> dict[str, Any]:
    """An inclusion proof of entry ``index`` in the tree of ``size`` (default: now), checked before it is given."""
    size = runtime.audit.size() if size is None else size
    if index >= size:  # asked before the database: an index past its integers made the driver fail
        raise ValueError(f"no event {index} in the log of size {size}")
    entry = runtime.audit.entry(index)
    proof = runtime.audit.inclusion_proof(index, size)
    root = runtime.audit.root(size)
    verify_inclusion(entry.leaf_hash, index, size, proof, root)
    return {
        "index": index,
        "size": size,
        "leaf_hash": base64.b64encode(entry.leaf_hash).decode(),
        "root_hash": base64.b64encode(root).decode(),
        "proof": [base64.b64encode(p).decode() for p in proof],
        "event": entry.event(),
    }


def consistency(runtime: NodeRuntime, size1: int, size2: int | None = None) -> dict[str, Any]:
    size2 = runtime.audit.size() if size2 is None else size2
    proof = runtime.audit.consistency_proof(size1, size2)
    root1, root2 = runtime.audit.root(size1), runtime.audit.root(size2)
    verify_consistency(size1, size2, proof, root1, root2)
    return {
        "size1": size1,
        "size2": size2,
        "root1": base64.b64encode(root1).decode(),
        "root2": base64.b64encode(root2).decode(),
        "proof": [base64.b64encode(p).decode() for p in proof],
    }


@dataclass
class NodeVerification:
    """``lienthong audit verify``: the log re-derived, checkpoints checked, archived objects re-hashed."""

    size: int
    checkpoints: int
    objects: int
    first_bad_index: int | None = None
    first_bad_checkpoint: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_node(runtime: NodeRuntime, log_key: str | None = None) -> NodeVerification:
    """Check everything offline: the tree from the stored entry bytes, every checkpoint, every object named.

    ``log_key`` is the log's verifier key as published (``name+keyid+base64``); without it, the key is
    derived from the node's own key file, which proves nothing against whoever could replace that file.
    Raises :class:`~storage.errors.CheckpointError` for a key that is malformed or names another log.
    """
    own = runtime.log_signer.verifier
    verifier = own if log_key is None else NoteVerifier.from_vkey(log_key.strip())
    if verifier.name != own.name:
        raise CheckpointError(
            f"the key given is for the log {verifier.name!r}; this node's log is {own.name!r} (a key of another node?)"
        )
    log = verify_log(runtime.engine, verifier)
    problems = list(log.problems)
    if verifier.key_id != own.key_id:
        problems.insert(
            0,
            f"the node's log key ({own.vkey()}) is not the key given: its checkpoints are not signed by the "
            "published key (either the key given is wrong, or the node's key was replaced)",
        )
    result = NodeVerification(log.size, log.checkpoints, 0, log.first_bad_index, log.first_bad_checkpoint, problems)
    # Objects named by entries that are themselves intact: a changed or missing object is reported at the
    # index of the first event that vouches for it.
    limit = log.size if log.first_bad_index is None else log.first_bad_index
    for index, event in _events(runtime, 0, limit):
        for name in OBJECT_FIELDS:
            key = event.get(name)
            if not isinstance(key, str):
                continue
            result.objects += 1
            try:
                runtime.objects.get(key)
            except (StorageError, KeyError, ValueError) as e:
                result.problems.append(f"entry {index}: the archived object {key} is not what was stored: {e}")
                if result.first_bad_index is None or index < result.first_bad_index:
                    result.first_bad_index = index
    return result


def _events(runtime: NodeRuntime, start: int, stop: int, chunk: int = 2048) -> Iterator[tuple[int, dict[str, Any]]]:
    for first in range(start, stop, chunk):
        for entry in runtime.audit.entries(first, min(stop, first + chunk)):
            yield entry.index, entry.event()


def query_events(
    runtime: NodeRuntime,
    *,
    types: set[str] | None = None,
    agency: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    notable_only: bool = False,
    outcome: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Events, newest first, filtered; each with its index and whether an auditor should look at it."""
    size = runtime.audit.size()
    out: list[dict[str, Any]] = []
    stop = size
    chunk = 2048
    while stop > 0 and len(out) < limit:
        first = max(0, stop - chunk)
        for entry in reversed(runtime.audit.entries(first, stop)):
            event = entry.event()
            if not _matches(event, types, agency, since, until, notable_only):
                continue
            if outcome is not None and outcome not in {str(event.get(k)) for k in ("indication", "reason", "why")}:
                continue
            out.append({"index": entry.index, "notable": is_notable(event), "event": event})
            if len(out) >= limit:
                break
        stop = first
    return out


def is_notable(event: dict[str, Any]) -> bool:
    kind = str(event.get("type", ""))
    if kind in NOTABLE:
        return True
    if kind == "message.received" and event.get("indication") not in (None, "TOTAL_PASSED"):
        return True
    return kind.startswith("archive.") and bool(event.get("unusual"))


def _matches(
    event: dict[str, Any],
    types: set[str] | None,
    agency: str | None,
    since: datetime | None,
    until: datetime | None,
    notable_only: bool,
) -> bool:
    if types and event.get("type") not in types:
        return False
    if (
        agency
        and agency not in {str(event.get(k)) for k in ("sender", "recipient", "agency", "node")}
        and agency not in (event.get("recipients") or [])
    ):
        return False
    if since or until:
        try:
            when = datetime.fromisoformat(str(event.get("time")))
        except ValueError:
            return False
        if since and when < since:
            return False
        if until and when > until:
            return False
    return not notable_only or is_notable(event)
