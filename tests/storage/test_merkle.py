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


# An independent oracle: RFC 9162 written out from its text (2.1.1 MTH, 2.1.3.1 PATH, 2.1.4.1 SUBPROOF), over
# lists, with no code of storage.merkle; and its verification algorithms 2.1.3.2 and 2.1.4.2 step by step.


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + _mth(d[:k]) + _mth(d[k:])).digest()


def _path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*_path(m, d[:k]), _mth(d[k:])]
    return [*_path(m - k, d[k:]), _mth(d[:k])]


def _subproof(m: int, d: list[bytes], complete: bool) -> list[bytes]:
    if m == len(d):
        return [] if complete else [_mth(d)]
    k = _k(len(d))
    if m <= k:
        return [*_subproof(m, d[:k], complete), _mth(d[k:])]
    return [*_subproof(m - k, d[k:], False), _mth(d[:k])]


def _h(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _rfc_inclusion_ok(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    if index >= size or index < 0 or any(len(x) != 32 for x in [leaf, root, *proof]):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _h(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _h(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def _rfc_consistency_ok(m: int, n: int, proof: list[bytes], root1: bytes, root2: bytes) -> bool:
    if not 0 < m <= n:  # m = 0 refused: the corpus's stricter rule
        return False
    if m == n:
        return not proof and root1 == root2
    if not proof or any(len(x) != 32 for x in [root1, root2, *proof]):
        return False
    if m & (m - 1) == 0:
        proof = [root1, *proof]
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _h(c, fr), _h(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _h(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == root1 and sr == root2


def _flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[(bit // 8) % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


def _accepts(verify: Any, *args: Any) -> bool:
    try:
        verify(*args)
    except MerkleProofError:
        return False
    return True


def test_every_proof_up_to_64_leaves_against_the_rfc_text_and_every_mutation_refused() -> None:
    leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(64)]
    tree = MemoryTree(leaves)
    disagree: list[tuple[object, ...]] = []
    for n in range(1, 65):
        d, root = leaves[:n], _mth(leaves[:n])
        assert tree.root(n) == root
        for m in range(n):  # inclusion, the last leaf included
            proof = inclusion_proof(tree, m, n)
            assert proof == _path(m, d), (m, n)
            verify_inclusion(d[m], m, n, proof, root)
            mutants = [(_flip(d[m], m), m, n, proof, root), (d[m], m, n, proof, _flip(root, n))]
            mutants += [
                (d[m], m, n, [*proof[:j], _flip(p, j * 37 + m), *proof[j + 1 :]], root) for j, p in enumerate(proof)
            ]
            mutants += [
                (d[m], m, n, proof[:-1], root),
                (d[m], m, n, [*proof, root], root),
                (d[m], m, n, proof[1:], root),
            ]
            mutants = [c for c in mutants if c != (d[m], m, n, proof, root)]
            for c in mutants:  # at the same index and size, every change is refused
                if _accepts(verify_inclusion, *c):
                    disagree.append(("inclusion mutant accepted", m, n))
            for c in [(d[m], i, n, proof, root) for i in range(-1, n + 2)] + [
                (d[m], m, s, proof, root) for s in range(-1, n + 3)
            ]:  # another index or size: as the RFC's algorithm judges (some sizes share a proof shape)
                if _accepts(verify_inclusion, *c) != _rfc_inclusion_ok(*c):
                    disagree.append(("inclusion", c[1], c[2], "vs", m, n))
        for m in range(0, n + 1):  # consistency, m = 0 and m = n included
            proof = consistency_proof(tree, m, n) if m else []
            if m:
                assert proof == _subproof(m, d, True), (m, n)
            r1 = _mth(d[:m])
            assert _accepts(verify_consistency, m, n, proof, r1, root) == (m > 0)
            mutants = [(m, n, proof, _flip(r1, m), root), (m, n, proof, r1, _flip(root, n))]
            mutants += [
                (m, n, [*proof[:j], _flip(p, j * 41 + m), *proof[j + 1 :]], r1, root) for j, p in enumerate(proof)
            ]
            mutants += [(m, n, proof[:-1], r1, root), (m, n, [*proof, root], r1, root), (m, n, [r1, *proof], r1, root)]
            mutants = [c for c in mutants if c != (m, n, proof, r1, root)]
            for c in mutants:
                if _accepts(verify_consistency, *c):
                    disagree.append(("consistency mutant accepted", m, n))
            for c in [(i, n, proof, r1, root) for i in range(-1, n + 2)] + [
                (m, s, proof, r1, root) for s in range(-1, n + 3)
            ]:
                if _accepts(verify_consistency, *c) != _rfc_consistency_ok(*c):
                    disagree.append(("consistency", c[0], c[1], "vs", m, n))
    assert not disagree, disagree[:10]
