"""The audit log: appends, proofs that verify, checkpoints, and tampering found at its first bad index."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from storage.auditlog import AuditLog, verify_log
from storage.canonical import canonical_json
from storage.checkpoint import NoteSigner, generate_log_key, verify_checkpoint
from storage.db import create_schema, make_engine
from storage.errors import AuditLogError
from storage.merkle import EMPTY_ROOT, leaf_hash, verify_consistency, verify_inclusion

ORIGIN = "node.example/000.00.00.G22/audit"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def key() -> NoteSigner:
    return generate_log_key(ORIGIN)


def _event(i: int) -> dict[str, object]:
    return {"type": "envelope.sent", "n": i, "object": f"sha256/{i:064x}", "actor": "văn thư"}


def _filled(engine: Engine, key: NoteSigner, n: int = 40) -> AuditLog:
    log = AuditLog(engine)
    log.append_many([_event(i) for i in range(n // 2)])
    log.checkpoint(key)
    for i in range(n // 2, n):
        log.append(_event(i))
    log.checkpoint(key)
    return log


def test_append_stores_canonical_bytes_and_proofs_verify(engine: Engine, key: NoteSigner) -> None:
    log = AuditLog(engine)
    assert log.size() == 0
    assert log.root() == EMPTY_ROOT
    entry = log.append({"b": 1, "a": "ố"})
    assert entry.index == 0
    assert entry.data == canonical_json({"a": "ố", "b": 1}) == '{"a":"ố","b":1}'.encode()
    assert entry.leaf_hash == leaf_hash(entry.data)
    entries = log.append_many([_event(i) for i in range(12)])
    assert [e.index for e in entries] == list(range(1, 13))
    assert log.entry(5) == entries[4]
    assert log.entry(5).event() == _event(4)
    assert [e.index for e in log.entries(3, 6)] == [3, 4, 5]
    size, root = log.size(), log.root()
    for i in range(size):
        verify_inclusion(log.entry(i).leaf_hash, i, size, log.inclusion_proof(i), root)
    for size1 in range(1, size + 1):
        verify_consistency(size1, size, log.consistency_proof(size1), log.root(size1), root)
    with pytest.raises(AuditLogError):
        log.inclusion_proof(13)
    with pytest.raises(AuditLogError):
        log.root(14)
    with pytest.raises(AuditLogError):
        log.entry(99)


def test_checkpoints_are_signed_notes_of_the_log(engine: Engine, key: NoteSigner) -> None:
    log = AuditLog(engine)
    assert log.latest_checkpoint() is None
    empty = log.checkpoint(key)
    assert (empty.size, empty.root_hash) == (0, EMPTY_ROOT)
    log.append_many([_event(i) for i in range(5)])
    latest = log.checkpoint(key)
    checkpoint, _ = verify_checkpoint(latest.note, key.verifier)
    assert (checkpoint.origin, checkpoint.size, checkpoint.root_hash) == (ORIGIN, 5, log.root())
    assert log.latest_checkpoint() == latest
    assert [c.size for c in log.checkpoints()] == [0, 5]
    assert verify_log(engine, key.verifier.vkey()).ok


def test_concurrent_appenders_never_share_an_index(engine: Engine, key: NoteSigner) -> None:
    log = AuditLog(engine)

    def work(worker: int) -> None:
        other = AuditLog(engine)
        for i in range(15):
            if i % 5 == 0:
                other.append_many([{"w": worker, "i": i, "batch": j} for j in range(3)])
            else:
                other.append({"w": worker, "i": i})

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.size() == 4 * (12 + 3 * 3)
    assert [e.index for e in log.entries(0, 1000)] == list(range(log.size()))
    log.checkpoint(key)
    result = verify_log(engine, key.verifier)
    assert result.ok, result.problems
    assert result.size == log.size()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, 40), min_size=1, max_size=4), st.integers(0, 2**32), st.integers(0, 2**32))
def test_proofs_from_the_log_verify(engine: Engine, batches: list[int], pick_index: int, pick_size: int) -> None:
    log = AuditLog(engine)  # the engine outlives examples: the log keeps growing, which is fine
    start = log.size()
    for n in batches:
        log.append_leaves([canonical_json({"n": start + i}) for i in range(n)])
        start += n
    size = log.size()
    index, size1 = pick_index % size, 1 + pick_size % size
    root = log.root()
    verify_inclusion(log.entry(index).leaf_hash, index, size, log.inclusion_proof(index), root)
    verify_consistency(size1, size, log.consistency_proof(size1), log.root(size1), root)


# Tampering, straight in the database as an intruder with SQL access would.


def _sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def _verify(engine: Engine, key: NoteSigner) -> tuple[int | None, tuple[str, ...]]:
    result = verify_log(engine, key.verifier.vkey())
    assert not result.ok
    return result.first_bad_index, result.problems


def test_clean_log_verifies(engine: Engine, key: NoteSigner) -> None:
    _filled(engine, key)
    result = verify_log(engine, key.verifier.vkey())
    assert result.ok, result.problems
    assert (result.size, result.checkpoints, result.first_bad_index) == (40, 2, None)


def test_edited_entry(engine: Engine, key: NoteSigner) -> None:
    _filled(engine, key)
    _sql(engine, "UPDATE audit_entries SET data = :d WHERE idx = 13", d=canonical_json({"forged": True}))
    bad, problems = _verify(engine, key)
    assert bad == 13
    assert "entry 13" in problems[0]


def test_edited_entry_with_its_leaf_hash_rewritten(engine: Engine, key: NoteSigner) -> None:
    _filled(engine, key)
    forged = canonical_json({"forged": True})
    _sql(engine, "UPDATE audit_entries SET data = :d WHERE idx = 13", d=forged)
    _sql(engine, "UPDATE audit_tree SET hash = :h WHERE level = 0 AND idx = 13", h=leaf_hash(forged))
    bad, problems = _verify(engine, key)
    assert bad == 12  # the smallest stored subtree that still remembers: leaves 12 and 13
    assert "[12, 14)" in problems[0]


def test_deleted_entry(engine: Engine, key: NoteSigner) -> None:
    _filled(engine, key)
    _sql(engine, "DELETE FROM audit_entries WHERE idx = 7")
    bad, problems = _verify(engine, key)
    assert bad == 7
    assert "missing" in problems[0]


def test_deleted_last_entries(engine: Engine, key: NoteSigner) -> None:
    _filled(engine, key)
    _sql(engine, "DELETE FROM audit_entries WHERE idx >= 38")
    bad, problems = _verify(engine, key)
    assert bad == 38
    assert any("missing" in p for p in problems)


def test_inserted_entry_shifting_the_rest(engine: Engine, key: NoteSigner) -> None:
    _filled(engine, key)
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT idx, data, appended_at FROM audit_entries WHERE idx >= 21")).all()
        conn.execute(text("DELETE FROM audit_entries WHERE idx >= 21"))
        for idx, data, at in rows:
            conn.execute(text("INSERT INTO audit_entries VALUES (:i, :d, :t)"), {"i": idx + 1, "d": data, "t": at})
        conn.execute(
            text("INSERT INTO audit_entries VALUES (21, :d, :t)"), {"d": canonical_json({"forged": 1}), "t": rows[0][2]}
        )
    bad, _ = _verify(engine, key)
    assert bad == 21


def test_inserted_entry_at_the_end(engine: Engine, key: NoteSigner) -> None:
    _filled(engine, key)
    _sql(engine, "INSERT INTO audit_entries VALUES (40, :d, '2025-01-01 00:00:00')", d=canonical_json({"x": 1}))
    bad, problems = _verify(engine, key)
    assert bad == 40
    assert "inserted" in problems[0]


def test_swapped_entries(engine: Engine, key: NoteSigner) -> None:
    _filled(engine, key)
    with engine.begin() as conn:
        a = conn.execute(text("SELECT data FROM audit_entries WHERE idx = 9")).scalar_one()
        b = conn.execute(text("SELECT data FROM audit_entries WHERE idx = 30")).scalar_one()
        conn.execute(text("UPDATE audit_entries SET data = :d WHERE idx = 9"), {"d": b})
        conn.execute(text("UPDATE audit_entries SET data = :d WHERE idx = 30"), {"d": a})
    bad, _ = _verify(engine, key)
    assert bad == 9


def test_whole_tree_rewritten_is_caught_by_the_signed_checkpoints(engine: Engine, key: NoteSigner) -> None:
    log = _filled(engine, key)
    # An intruder rebuilds a consistent database with entry 25 changed; only the signed checkpoints remember.
    forged = [log.entry(i).data for i in range(40)]
    forged[25] = canonical_json({"forged": True})
    _sql(engine, "DELETE FROM audit_entries")
    _sql(engine, "DELETE FROM audit_tree")
    _sql(engine, "UPDATE audit_head SET size = 0, frontier = :empty", empty=b"")
    log.append_leaves(forged)
    result = verify_log(engine, key.verifier.vkey())
    assert not result.ok
    assert result.first_bad_index == 20  # after the first checkpoint (size 20), before the second (40)
    assert result.first_bad_checkpoint == 2


def test_rewritten_checkpoint(engine: Engine, key: NoteSigner) -> None:
    _filled(engine, key)
    with engine.begin() as conn:
        note = conn.execute(text("SELECT note FROM audit_checkpoints WHERE id = 1")).scalar_one()
        conn.execute(
            text("UPDATE audit_checkpoints SET note = :n WHERE id = 1"), {"n": note.replace("\n20\n", "\n19\n")}
        )
    result = verify_log(engine, key.verifier.vkey())
    assert not result.ok
    assert result.first_bad_checkpoint == 1
    assert "does not verify" in result.problems[0]


def test_checkpoint_signed_by_another_key(engine: Engine, key: NoteSigner) -> None:
    log = _filled(engine, key)
    log.checkpoint(generate_log_key(ORIGIN))
    result = verify_log(engine, key.verifier.vkey())
    assert result.first_bad_checkpoint == 3


def test_a_log_cut_back_under_its_only_checkpoint_is_caught(engine: Engine, key: NoteSigner) -> None:
    """The intruder deletes the last entries and puts the head back as it was before them: everything left is
    self-consistent, and only the one checkpoint, signed at size 10, remembers."""
    log = AuditLog(engine)
    log.append_many([_event(i) for i in range(8)])
    with engine.connect() as conn:
        size8, frontier8 = conn.execute(text("SELECT size, frontier FROM audit_head")).one()
    log.append_many([_event(i) for i in range(8, 10)])
    log.checkpoint(key)
    _sql(engine, "DELETE FROM audit_entries WHERE idx >= 8")
    _sql(engine, "DELETE FROM audit_tree WHERE (level = 0 AND idx >= 8) OR (level = 1 AND idx >= 4)")
    _sql(engine, "UPDATE audit_head SET size = :s, frontier = :f", s=size8, f=frontier8)
    bad, problems = _verify(engine, key)
    assert bad == 8
    assert any("commits to 10 entries; the log holds 8" in p for p in problems), problems
