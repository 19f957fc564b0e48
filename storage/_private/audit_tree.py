"""The audit log's tree in the database: the right-edge frontier that appends extend, and proofs' hash source."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from functools import lru_cache

from sqlalchemy import Connection, TextClause, text

from storage._private.audit_tables import TREE
from storage.errors import AuditLogError
from storage.merkle import EMPTY_ROOT, HASH_SIZE, Node, fold, node_hash

Frontier = list[tuple[int, bytes]]
"""The perfect subtrees ``(level, hash)`` covering ``[0, size)``, largest (leftmost) first: one per set bit."""


def frontier_levels(size: int) -> list[int]:
    return [level for level in range(size.bit_length() - 1, -1, -1) if size >> level & 1]


def decode_frontier(size: int, blob: bytes) -> Frontier:
    levels = frontier_levels(size)
    if len(blob) != HASH_SIZE * len(levels):
        raise AuditLogError(f"the append head of size {size} holds a frontier of {len(blob)} bytes: damaged")
    return [(level, blob[i * HASH_SIZE : (i + 1) * HASH_SIZE]) for i, level in enumerate(levels)]


def encode_frontier(frontier: Frontier) -> bytes:
    return b"".join(value for _, value in frontier)


def frontier_root(frontier: Frontier) -> bytes:
    return fold([value for _, value in frontier]) if frontier else EMPTY_ROOT


def extend(size: int, frontier: Frontier, leaf_hashes: Iterable[bytes]) -> tuple[Frontier, list[dict[str, object]]]:
    """Append leaves after ``size``: the new frontier, and a row for every subtree completed (leaves included)."""
    stack = list(frontier)
    rows: list[dict[str, object]] = []
    index = size
    for value in leaf_hashes:
        level = 0
        rows.append({"level": 0, "idx": index, "hash": value})
        while stack and stack[-1][0] == level:
            value = node_hash(stack.pop()[1], value)
            level += 1
            rows.append({"level": level, "idx": index >> level, "hash": value})
        stack.append((level, value))
        index += 1
    return stack, rows


class DbHashSource:
    """Node hashes read from ``audit_tree`` through an open connection, all in one query per call."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def node_hashes(self, nodes: Collection[Node]) -> dict[Node, bytes]:
        if not nodes:
            return {}
        params: dict[str, int] = {}
        for i, (level, index) in enumerate(nodes):
            params[f"l{i}"] = level
            params[f"i{i}"] = index
        found = {
            (level, index): bytes(value) for level, index, value in self._conn.execute(_lookup(len(nodes)), params)
        }
        missing = [node for node in nodes if node not in found]
        if missing:
            raise AuditLogError(f"tree nodes {sorted(missing)[:5]} are missing from audit_tree: the log is damaged")
        return found


@lru_cache(maxsize=256)
def _lookup(count: int) -> TextClause:
    """One statement per number of nodes: ORed primary-key equalities, which SQLite and PostgreSQL both answer
    with one index probe per node (a row-value IN list makes SQLite scan the table)."""
    where = " OR ".join(f"(level = :l{i} AND idx = :i{i})" for i in range(count))
    return text(f"SELECT level, idx, hash FROM {TREE.name} WHERE {where}")  # noqa: S608 - no value is spliced in
