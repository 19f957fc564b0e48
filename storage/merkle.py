"""Merkle tree hashing and proofs of RFC 9162 (Certificate Transparency v2), section 2.1 (cây Merkle).

* leaf hash ``SHA-256(0x00 ‖ data)``, interior node ``SHA-256(0x01 ‖ left ‖ right)``;
* the root of ``n > 1`` leaves splits them at ``k``, the largest power of two smaller than ``n``;
* the root of no leaves is ``SHA-256("")``.

Proofs are *generated* from a :class:`HashSource` that can give the hash of any *perfect* subtree (2**level
leaves starting at a multiple of 2**level): every hash a proof needs is a perfect subtree or a fold of a few,
so a store that keeps perfect subtrees as they complete answers any proof with one lookup of ~2·log2(n) rows.

Proofs are *verified* by :func:`verify_inclusion` and :func:`verify_consistency`, which raise
:class:`~storage.errors.MerkleProofError` saying what is wrong. Two rules are stricter than RFC 9162's
pseudo-code, as the transparency-dev test vectors demand: every hash an inclusion proof touches must be 32 bytes
(an empty leaf or root is refused even when they "match"), and a consistency proof from the empty tree
(``size1 == 0``) is refused: it proves nothing, so a caller that asks for one has made a mistake.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol

from storage.errors import MerkleProofError

HASH_SIZE = 32
"""Bytes in a SHA-256 hash."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root hash of the tree with no leaves (RFC 9162, 2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

Node = tuple[int, int]
"""A perfect subtree ``(level, index)``: the ``2**level`` leaves from ``index << level``; level 0 is a leaf."""


def leaf_hash(data: bytes) -> bytes:
    """The hash of a leaf holding ``data``: ``SHA-256(0x00 ‖ data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: ``SHA-256(0x01 ‖ left ‖ right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


class HashSource(Protocol):
    """Where proofs get their hashes: the hash of each perfect subtree asked for."""

    def node_hashes(self, nodes: Collection[Node]) -> Mapping[Node, bytes]:
        """The hash of every node in ``nodes``; each one lies within leaves the source already holds."""
        ...


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n >= 2``): where RFC 9162 splits ``n`` leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[Node]:
    """The perfect subtrees, left to right, whose fold is the hash of leaves ``[start, end)``.

    Only ranges that RFC 9162's recursion produces are allowed: ``start`` is a multiple of a power of two
    at least ``end - start``. Their hash is the largest perfect subtree on the left, then the rest, recursively.
    """
    if not 0 <= start < end:
        raise ValueError(f"empty or negative leaf range [{start}, {end})")
    nodes: list[Node] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start & ((1 << level) - 1):
            raise ValueError(f"leaf range [{start}, {end}) is not a subtree of an RFC 9162 tree")
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """The hash of a range from the hashes of its :func:`range_nodes`: they nest to the right."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form the inclusion proof of leaf ``index`` in a tree of ``size`` (bottom up)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of {size} leaves")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form the consistency proof from ``size1`` to ``size2`` (RFC 9162, 2.1.4.1)."""
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    ranges: list[tuple[int, int]] = []
    start, end, m, complete = 0, size2, size1, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def hash_ranges(source: HashSource, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """The hash of each leaf range, with all the node hashes fetched from ``source`` in one call."""
    per_range = [range_nodes(start, end) for start, end in ranges]
    found = source.node_hashes({node for nodes in per_range for node in nodes})
    return [fold([found[node] for node in nodes]) for nodes in per_range]


def tree_root(source: HashSource, size: int) -> bytes:
    """The root hash of the first ``size`` leaves of ``source``."""
    return EMPTY_ROOT if size == 0 else hash_ranges(source, [(0, size)])[0]


def inclusion_proof(source: HashSource, index: int, size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of the first ``size`` leaves (RFC 9162, 2.1.3.1)."""
    return hash_ranges(source, inclusion_ranges(index, size))


def consistency_proof(source: HashSource, size1: int, size2: int) -> list[bytes]:
    """The proof that the tree of ``size1`` leaves is a prefix of the tree of ``size2`` (RFC 9162, 2.1.4.1)."""
    return [] if size1 == size2 else hash_ranges(source, consistency_ranges(size1, size2))


class MemoryTree:
    """A tree held in memory: every level of perfect subtrees, built as leaves are appended.

    For tests, tools and offline verification; the audit log keeps the same hashes in its database.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for value in leaf_hashes:
            self.append(value)

    def __len__(self) -> int:
        return len(self._levels[0])

    def append(self, value: bytes) -> None:
        """Append the leaf whose hash is ``value`` and every perfect subtree it completes."""
        if len(value) != HASH_SIZE:
            raise ValueError(f"a leaf hash has {HASH_SIZE} bytes, not {len(value)}")
        level = 0
        while True:
            nodes = self._levels[level]
            nodes.append(value)
            if len(nodes) % 2:
                return
            value = node_hash(nodes[-2], nodes[-1])
            level += 1
            if level == len(self._levels):
                self._levels.append([])

    def node_hashes(self, nodes: Collection[Node]) -> dict[Node, bytes]:
        try:
            return {(level, index): self._levels[level][index] for level, index in nodes}
        except IndexError:
            raise ValueError(f"a node asked for lies beyond the {len(self)} leaves of the tree") from None

    def root(self, size: int | None = None) -> bytes:
        """The root of the first ``size`` leaves (all by default)."""
        return tree_root(self, len(self) if size is None else size)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """The root hash of a tree with these leaf hashes (RFC 9162, 2.1.1)."""
    return MemoryTree(leaf_hashes).root()


# Verification.


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise MerkleProofError(f"{what} has {len(value)} bytes; a SHA-256 hash has {HASH_SIZE}")


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    for i, value in enumerate(proof):
        _check_hash(f"proof hash {i}", value)


def _inclusion_proof_length(index: int, size: int) -> int:
    """How many hashes the inclusion proof of ``index`` in ``size`` leaves has (index < size)."""
    inner = (index ^ (size - 1)).bit_length()  # levels where the path and the right border part
    return inner + (index >> inner).bit_count()  # plus the left siblings on the shared border


def _root_from_path(seed: bytes, index: int, last: int, proof: Sequence[bytes]) -> bytes:
    """Climb from ``seed`` (node ``index`` of a level whose last node is ``last``) through ``proof``."""
    result = seed
    for sibling in proof:
        if index & 1 or index == last:
            result = node_hash(sibling, result)
            # a right-border node without a right sibling rises unchanged until it is a right child
            while not index & 1 and index:
                index >>= 1
                last >>= 1
        else:
            result = node_hash(result, sibling)
        index >>= 1
        last >>= 1
    return result


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves whose root is ``root``.

    Raises :class:`~storage.errors.MerkleProofError` naming the problem.
    """
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root hash", root)
    _check_proof_hashes(proof)
    if index < 0 or size < 0:
        raise MerkleProofError(f"negative leaf index {index} or tree size {size}")
    if index >= size:
        raise MerkleProofError(f"leaf index {index} is not in a tree of {size} leaves")
    expected = _inclusion_proof_length(index, size)
    if len(proof) != expected:
        raise MerkleProofError(
            f"inclusion proof has {len(proof)} hashes; leaf {index} of {size} needs {expected} "
            f"(proof too {'long' if len(proof) > expected else 'short'})"
        )
    computed = _root_from_path(leaf_hash, index, size - 1, proof)
    if not hmac.compare_digest(computed, root):
        raise MerkleProofError(
            f"inclusion proof of leaf {index} in {size} leaves gives root {computed.hex()}, not {root.hex()}"
        )


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree of ``size1`` leaves with root ``root1`` is a prefix of the one of ``size2`` with ``root2``.

    Equal sizes need an empty proof and equal roots (compared as given). A proof from the empty tree is refused.
    Raises :class:`~storage.errors.MerkleProofError` naming the problem.
    """
    if size1 < 0 or size2 < 0:
        raise MerkleProofError(f"negative tree size {size1} or {size2}")
    if size2 < size1:
        raise MerkleProofError(f"size2 {size2} is smaller than size1 {size1}: a log never shrinks")
    if size1 == 0:
        raise MerkleProofError("consistency from the empty tree (size1 = 0) proves nothing; none is checked")
    if size1 == size2:
        if proof:
            raise MerkleProofError(f"sizes are equal ({size1}) but the proof has {len(proof)} hashes, not 0")
        if not hmac.compare_digest(root1, root2):
            raise MerkleProofError(f"sizes are equal ({size1}) but the roots differ: the log forked")
        return
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    _check_proof_hashes(proof)
    # Climb from the largest perfect subtree the two trees share on the right border of the first one.
    level = (size1 & -size1).bit_length() - 1
    index, last = (size1 - 1) >> level, (size2 - 1) >> level
    seeded = index == 0  # size1 is a power of two: root1 itself is the seed, not sent in the proof
    expected = _inclusion_proof_length(index, last + 1) + (0 if seeded else 1)
    if len(proof) != expected:
        raise MerkleProofError(
            f"consistency proof has {len(proof)} hashes; {size1} to {size2} needs {expected} "
            f"(proof too {'long' if len(proof) > expected else 'short'})"
        )
    seed, path = (root1, proof) if seeded else (proof[0], proof[1:])
    # One climb gives both roots: the first tree's uses only the left siblings of the path.
    computed1 = computed2 = seed
    for sibling in path:
        if index & 1 or index == last:
            computed1 = node_hash(sibling, computed1)
            computed2 = node_hash(sibling, computed2)
            while not index & 1 and index:
                index >>= 1
                last >>= 1
        else:
            computed2 = node_hash(computed2, sibling)
        index >>= 1
        last >>= 1
    if not hmac.compare_digest(computed1, root1):
        raise MerkleProofError(f"consistency proof gives root {computed1.hex()} for size {size1}, not root1")
    if not hmac.compare_digest(computed2, root2):
        raise MerkleProofError(f"consistency proof gives root {computed2.hex()} for size {size2}, not root2")
