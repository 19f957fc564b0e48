"""Offline verification of the whole audit log from its stored bytes (kiểm tra toàn bộ nhật ký).

The tree is re-derived leaf by leaf from the entry bytes and compared, in append order, with every hash the
log stored when it appended (leaf hashes, then each perfect subtree as it completes) and with the root of every
checkpoint when the derivation reaches its size. The first disagreement names the first bad index: the leaf
hashes are kept apart from the bytes, so an edited, inserted, deleted or moved entry is found at its exact
index; someone who also rewrote the stored hashes is found by the first stored subtree or signed checkpoint
that still remembers the old history, with the range of indexes it covers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, and_, or_, select

from storage._private.audit_tables import CHECKPOINTS, ENTRIES, HEAD, HEAD_ID, TREE
from storage._private.audit_tree import DbHashSource, Frontier, decode_frontier, frontier_root
from storage.checkpoint import NoteVerifier, verify_checkpoint
from storage.errors import AuditLogError, CheckpointError, MerkleProofError
from storage.merkle import consistency_proof, leaf_hash, node_hash, verify_consistency


@dataclass(frozen=True)
class LogVerification:
    """What :func:`verify_log` found; ``ok`` when nothing is wrong."""

    size: int
    """Entries re-derived and found good."""
    checkpoints: int
    """Checkpoints whose signature, root and consistency were checked."""
    first_bad_index: int | None = None
    """The first entry index that is not what the log appended (or the start of the range that holds it)."""
    first_bad_checkpoint: int | None = None
    """The id of the first stored checkpoint that is forged, rewritten or inconsistent."""
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Checked:
    id: int
    size: int
    root: bytes


class _Findings:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.bad_index: int | None = None
        self.bad_checkpoint: int | None = None

    def entry(self, index: int, message: str) -> None:
        self.problems.append(message)
        self.bad_index = index if self.bad_index is None else min(self.bad_index, index)

    def checkpoint(self, checkpoint_id: int, message: str, index: int | None = None) -> None:
        self.problems.append(message)
        if self.bad_checkpoint is None:
            self.bad_checkpoint = checkpoint_id
        if index is not None:
            self.bad_index = index if self.bad_index is None else min(self.bad_index, index)


def _read_checkpoints(conn: Connection, log_key: NoteVerifier, findings: _Findings) -> list[_Checked]:
    """Every stored checkpoint whose signature holds and whose columns say what its note says."""
    good: list[_Checked] = []
    for row in conn.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.id)):
        try:
            checkpoint, _ = verify_checkpoint(row.note, log_key)
        except CheckpointError as exc:
            findings.checkpoint(row.id, f"checkpoint #{row.id}: {exc} (rewritten or forged)")
            continue
        if (checkpoint.size, checkpoint.root_hash) != (row.size, bytes(row.root_hash)):
            findings.checkpoint(row.id, f"checkpoint #{row.id}: its size or root column differs from its signed note")
            continue
        good.append(_Checked(row.id, checkpoint.size, checkpoint.root_hash))
    return good


def _stored_nodes(conn: Connection, first: int, last: int) -> dict[tuple[int, int], bytes]:
    """Stored hashes of the subtrees that complete at leaves ``first`` to ``last``, leaves included."""
    conditions = []
    level = 0
    while (last + 1) >> level:
        low = -(-(first + 1) >> level) - 1  # ceil((first + 1) / 2**level) - 1
        high = ((last + 1) >> level) - 1
        if low <= high:
            conditions.append(and_(TREE.c.level == level, TREE.c.idx >= low, TREE.c.idx <= high))
        level += 1
    rows = conn.execute(select(TREE.c.level, TREE.c.idx, TREE.c.hash).where(or_(*conditions)))
    return {(lvl, idx): bytes(value) for lvl, idx, value in rows}


def _chunks(conn: Connection, chunk: int) -> Iterator[list[tuple[int, bytes]]]:
    result = conn.execution_options(yield_per=chunk).execute(
        select(ENTRIES.c.idx, ENTRIES.c.data).order_by(ENTRIES.c.idx)
    )
    for rows in result.partitions(chunk):
        yield [(int(idx), bytes(data)) for idx, data in rows]


def _derive(conn: Connection, checked: list[_Checked], findings: _Findings, chunk: int) -> tuple[int, Frontier, bool]:
    """Re-derive the tree from the entry bytes: (entries found good, their frontier, whether all were good)."""
    by_size: dict[int, list[_Checked]] = {}
    for cp in checked:
        by_size.setdefault(cp.size, []).append(cp)
    last_good_size = 0

    def at_size(size: int, frontier: Frontier) -> bool:
        nonlocal last_good_size
        root = frontier_root(frontier)
        for cp in by_size.get(size, []):
            if cp.root != root:
                findings.checkpoint(
                    cp.id,
                    f"checkpoint #{cp.id} signed another root for size {size}: some entry in "
                    f"[{last_good_size}, {size}) was changed and its stored hashes rewritten",
                    last_good_size,
                )
                return False
        if size in by_size:
            last_good_size = size
        return True

    stack: Frontier = []
    expected = 0
    if not at_size(0, stack):
        return 0, stack, False
    for rows in _chunks(conn, chunk):
        stored = _stored_nodes(conn, expected, rows[-1][0])
        for idx, data in rows:
            if idx != expected:
                findings.entry(expected, f"entry {expected} is missing (deleted or moved); the next stored is {idx}")
                return expected, stack, False
            value = leaf_hash(data)
            recorded = stored.get((0, idx))
            if recorded is None:
                findings.entry(idx, f"entry {idx} has no leaf hash in the tree: the log never appended it (inserted)")
                return expected, stack, False
            if recorded != value:
                findings.entry(
                    idx,
                    f"entry {idx}: its bytes do not hash to the leaf hash recorded when it was appended "
                    "(edited, inserted or moved)",
                )
                return expected, stack, False
            level = 0
            while stack and stack[-1][0] == level:
                value = node_hash(stack.pop()[1], value)
                level += 1
                if stored.get((level, idx >> level)) != value:
                    start = (idx >> level) << level
                    findings.entry(
                        start,
                        f"entries [{start}, {idx + 1}) do not hash to the stored subtree (level {level}): "
                        "one of them was changed and its leaf hash rewritten",
                    )
                    return expected, stack, False
            stack.append((level, value))
            expected += 1
            if not at_size(expected, stack):
                return expected, stack, False
    return expected, stack, True


def _check_sequence(conn: Connection, checked: list[_Checked], size: int, findings: _Findings) -> None:
    """No checkpoint commits to more than the log holds, and consecutive ones never shrink and are consistent,
    by proofs from the stored tree."""
    # Every checkpoint, the first too: a log cut back under its only checkpoint (entries deleted, the head put
    # back as it was) is consistent in itself, and only that checkpoint remembers how long it was.
    for cp in checked:
        if cp.size > size:
            findings.checkpoint(
                cp.id, f"checkpoint #{cp.id} commits to {cp.size} entries; the log holds {size} (deleted)", size
            )
            return
    for prev, cur in itertools.pairwise(checked):
        if cur.size < prev.size:
            findings.checkpoint(
                cur.id, f"checkpoint #{cur.id} has size {cur.size}, smaller than #{prev.id} ({prev.size}): rolled back"
            )
            continue
        if prev.size == 0:
            continue
        try:
            proof = [] if prev.size == cur.size else consistency_proof(DbHashSource(conn), prev.size, cur.size)
            verify_consistency(prev.size, cur.size, proof, prev.root, cur.root)
        except (MerkleProofError, AuditLogError) as exc:
            findings.checkpoint(cur.id, f"checkpoints #{prev.id} and #{cur.id} are not consistent: {exc}")


def verify_log(engine: Engine, log_key: NoteVerifier | str, *, chunk: int = 4096) -> LogVerification:
    """Re-derive the audit log from its stored entries and check every stored checkpoint, offline.

    ``log_key`` is the log's verifier key (``name+keyid+base64``). Nothing is written.
    """
    verifier = NoteVerifier.from_vkey(log_key) if isinstance(log_key, str) else log_key
    findings = _Findings()
    with engine.connect() as conn:
        head = conn.execute(select(HEAD.c.size, HEAD.c.frontier).where(HEAD.c.id == HEAD_ID)).first()
        checked = _read_checkpoints(conn, verifier, findings)
        stored, stack, complete = _derive(conn, checked, findings, chunk)
        if complete:
            head_size = None if head is None else int(head.size)
            if head_size is None:
                findings.problems.append("the append head is missing")
            elif stored < head_size:
                findings.entry(stored, f"entries [{stored}, {head_size}) are missing (deleted): the log appended them")
            elif stored > head_size:
                findings.entry(head_size, f"entry {head_size} is beyond the log's size {head_size} (inserted)")
            else:
                try:
                    frontier = decode_frontier(head_size, bytes(head.frontier))  # type: ignore[union-attr]
                except AuditLogError as exc:
                    findings.problems.append(str(exc))
                else:
                    if frontier_root(frontier) != frontier_root(stack):
                        findings.problems.append("the append head's cached frontier differs from the entries")
            _check_sequence(conn, checked, stored, findings)
    return LogVerification(
        size=stored,
        checkpoints=len(checked),
        first_bad_index=findings.bad_index,
        first_bad_checkpoint=findings.bad_checkpoint,
        problems=tuple(findings.problems),
    )
