"""RFC 9162 Merkle hashing and proofs: every transparency-dev vector of the corpus, and generated proofs."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.errors import MerkleProofError
from storage.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_nodes,
    root_of,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path("merkle") / "testdata"


def _vectors(corpus: Path, kind: str) -> list[tuple[str, dict[str, Any]]]:
    root = corpus / VECTORS / kind
    found = sorted(root.rglob("*.json"))
    assert found, f"no {kind} vectors under {root}"
    return [(str(path.relative_to(root)), json.loads(path.read_text())) for path in found]


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _proof(vector: dict[str, Any]) -> list[bytes]:
    return [_b64(h) for h in vector["proof"] or []]


def _inclusion_fails(v: dict[str, Any]) -> bool:
    try:
        verify_inclusion(_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], _proof(v), _b64(v["root"]))
    except MerkleProofError:
        return True
    return False


def _consistency_fails(v: dict[str, Any]) -> bool:
    try:
        verify_consistency(v["size1"], v["size2"], _proof(v), _b64(v["root1"]), _b64(v["root2"]))
    except MerkleProofError:
        return True
    return False


def test_every_inclusion_vector(corpus: Path) -> None:
    vectors = _vectors(corpus, "inclusion")
    assert len(vectors) == 98
    wrong = [name for name, v in vectors if _inclusion_fails(v) != v["wantErr"]]
    assert not wrong, f"inclusion vectors judged wrongly: {wrong}"


def test_every_consistency_vector(corpus: Path) -> None:
    vectors = _vectors(corpus, "consistency")
    assert len(vectors) == 98
    wrong = [name for name, v in vectors if _consistency_fails(v) != v["wantErr"]]
    assert not wrong, f"consistency vectors judged wrongly: {wrong}"


def test_all_196_vectors_are_used(corpus: Path) -> None:
    assert len(_vectors(corpus, "inclusion")) + len(_vectors(corpus, "consistency")) == 196


def test_reasons_are_named() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(7)]
    tree = MemoryTree(leaves)
    proof = inclusion_proof(tree, 3, 7)
    with pytest.raises(MerkleProofError, match="has 0 bytes"):
        verify_inclusion(b"", 3, 7, proof, tree.root())
    with pytest.raises(MerkleProofError, match="not in a tree of 7"):
        verify_inclusion(leaves[3], 7, 7, proof, tree.root())
    with pytest.raises(MerkleProofError, match="too long"):
        verify_inclusion(leaves[3], 3, 7, [*proof, proof[0]], tree.root())
    with pytest.raises(MerkleProofError, match="too short"):
        verify_inclusion(leaves[3], 3, 7, proof[:-1], tree.root())
    with pytest.raises(MerkleProofError, match="gives root"):
        verify_inclusion(leaves[2], 3, 7, proof, tree.root())
    with pytest.raises(MerkleProofError, match="empty tree"):
        verify_consistency(0, 7, [], EMPTY_ROOT, tree.root())
    with pytest.raises(MerkleProofError, match="forked"):
        verify_consistency(7, 7, [], tree.root(6), tree.root())
    with pytest.raises(MerkleProofError, match="smaller"):
        verify_consistency(7, 6, [], tree.root(), tree.root(6))


def test_rfc9162_shape() -> None:
    a, b, c = (leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert root_of([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert root_of([a]) == a
    assert root_of([a, b, c]) == node_hash(node_hash(a, b), c)
    assert range_nodes(0, 7) == [(2, 0), (1, 2), (0, 6)]
    with pytest.raises(ValueError, match="not a subtree"):
        range_nodes(1, 3)


def _reference_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1), st.integers(1, n))))
def test_generated_proofs_verify(case: tuple[int, int, int]) -> None:
    size, index, size1 = case
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    tree = MemoryTree(leaves)
    root = tree.root()
    assert root == _reference_root(leaves)
    verify_inclusion(leaves[index], index, size, inclusion_proof(tree, index, size), root)
    verify_consistency(size1, size, consistency_proof(tree, size1, size), tree.root(size1), root)
    if size1 < size:
        with pytest.raises(MerkleProofError):
            verify_consistency(size1, size, consistency_proof(tree, size1, size), tree.root(size1), tree.root(size1))
