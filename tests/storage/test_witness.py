"""The witness cosigns honest growth and refuses forks, rollbacks and foreign keys."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from storage.auditlog import AuditLog
from storage.canonical import canonical_json
from storage.checkpoint import (
    Checkpoint,
    add_signatures,
    generate_log_key,
    generate_witness_key,
    parse_note,
    sign_checkpoint,
    verify_cosignature,
)
from storage.db import create_schema, make_engine
from storage.errors import CheckpointError, WitnessRefusal
from storage.witness import Witness, WitnessConflict

ORIGIN = "h41.example/audit"


def _engine(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    return engine


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[Engine, Engine, Engine]]:
    made = (_engine(tmp_path / "node.db"), _engine(tmp_path / "fork.db"), _engine(tmp_path / "axis.db"))
    yield made
    for engine in made:
        engine.dispose()


def test_honest_growth_is_cosigned_and_a_fork_refused(engines: tuple[Engine, Engine, Engine]) -> None:
    node_db, fork_db, axis_db = engines
    log_key = generate_log_key(ORIGIN)
    vkey = log_key.verifier.vkey()
    witness = Witness(axis_db, generate_witness_key("axis.example/witness"))
    log = AuditLog(node_db)
    leaves = [canonical_json({"n": i}) for i in range(30)]

    log.append_leaves(leaves[:10])
    first = log.checkpoint(log_key)
    line = witness.cosign(first.note, [], vkey, timestamp=1_700_000_000)
    assert verify_cosignature(first.note + line, witness.verifier) == 1_700_000_000
    assert parse_note(first.note + line).signatures[1].name == "axis.example/witness"

    witness.cosign(first.note, [], vkey)  # the same checkpoint again is fine
    log.append_leaves(leaves[10:25])
    second = log.checkpoint(log_key)
    witness.cosign(second.note, log.consistency_proof(10, 25), vkey)
    assert witness.last_seen(ORIGIN) == (25, second.root_hash)

    # The node rewrites entry 12 and re-signs with its own key: the witness remembers size 25.
    forked = AuditLog(fork_db)
    forked.append_leaves([*leaves[:12], canonical_json({"forged": True}), *leaves[13:27]])
    fork_checkpoint = forked.checkpoint(log_key)
    with pytest.raises(WitnessRefusal, match="forked"):
        witness.cosign(fork_checkpoint.note, forked.consistency_proof(25, 27), vkey)
    with pytest.raises(WitnessRefusal, match="forked"):  # and a proof from the honest log does not help
        witness.cosign(fork_checkpoint.note, log.consistency_proof(25), vkey)

    # Same size, other root: a fork too.
    same_size = AuditLog(_fresh(fork_db))
    same_size.append_leaves([*leaves[:24], canonical_json({"other": 1})])
    with pytest.raises(WitnessRefusal, match="forked"):
        witness.cosign(same_size.checkpoint(log_key).note, [], vkey)

    # Rollback, another key, a tampered note.
    with pytest.raises(WitnessRefusal, match="rollback"):
        witness.cosign(first.note, [], vkey)
    impostor = generate_log_key(ORIGIN)
    with pytest.raises(WitnessRefusal, match="another key"):
        witness.cosign(forked.checkpoint(impostor).note, [], impostor.verifier.vkey())
    with pytest.raises(WitnessRefusal, match="does not verify"):
        witness.cosign(second.note.replace("\n25\n", "\n26\n"), [], vkey)
    assert witness.last_seen(ORIGIN) == (25, second.root_hash)

    # Honest growth still goes on, and cosignatures stack on the note.
    log.append_leaves(leaves[25:])
    third = log.checkpoint(log_key)
    line = witness.cosign(third.note, log.consistency_proof(25, 30), vkey)
    other = Witness(axis_db, generate_witness_key("other.example/witness"))
    other_line = other.cosign(third.note, [], vkey)
    note = add_signatures(third.note, parse_note(third.note + line + other_line).signatures[1:])
    verify_cosignature(note, witness.verifier)
    verify_cosignature(note, other.verifier)


def _fresh(engine: Engine) -> Engine:
    """An empty database next to ``engine``'s."""
    database = engine.url.database
    assert database is not None
    return _engine(Path(database).with_name("fresh.db"))


def test_witness_needs_a_cosignature_key(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError):
        Witness(_engine(tmp_path / "w.db"), generate_log_key("x.example/log"))


def test_a_size_zero_checkpoint_must_carry_the_empty_root(engines: tuple[Engine, Engine, Engine]) -> None:
    # RFC 9162 2.1.1: the tree of no leaves has root SHA-256(""); a "size 0" note with another root describes
    # no tree at all, and cosigning it would state a head the log cannot have.
    node_db, _, axis_db = engines
    log_key = generate_log_key(ORIGIN)
    witness = Witness(axis_db, generate_witness_key("axis.example/witness"))
    bogus = sign_checkpoint(Checkpoint(ORIGIN, 0, hashlib.sha256(b"not empty").digest()), log_key)
    with pytest.raises(WitnessRefusal, match="size 0"):
        witness.cosign(bogus, [], log_key.verifier.vkey())
    assert witness.last_seen(ORIGIN) is None
    empty = AuditLog(node_db).checkpoint(log_key)
    witness.cosign(empty.note, [], log_key.verifier.vkey())
    with pytest.raises(WitnessRefusal, match="size 0"):  # and not after an honest empty one either
        witness.cosign(bogus, [], log_key.verifier.vkey())
    assert witness.last_seen(ORIGIN) == (0, hashlib.sha256(b"").digest())


def test_a_log_that_lost_the_last_cosignature_is_told_the_size_not_accused_of_a_fork(
    engines: tuple[Engine, Engine, Engine],
) -> None:
    # The witness cosigned size 10 but the answer was lost: the log still believes 0 (c2sp.org/tlog-witness
    # "old" size). Its proof from the wrong size is not a fork; the witness says which size it holds.
    node_db, _, axis_db = engines
    log_key = generate_log_key(ORIGIN)
    vkey = log_key.verifier.vkey()
    witness = Witness(axis_db, generate_witness_key("axis.example/witness"))
    log = AuditLog(node_db)
    log.append_leaves([canonical_json({"n": i}) for i in range(10)])
    witness.cosign(log.checkpoint(log_key).note, [], vkey, old_size=0)  # answer lost on the way back
    log.append_leaves([canonical_json({"n": i}) for i in range(10, 15)])
    second = log.checkpoint(log_key)
    with pytest.raises(WitnessConflict) as conflict:
        witness.cosign(second.note, [], vkey, old_size=0)
    assert conflict.value.known_size == 10
    assert "forked" not in str(conflict.value)
    line = witness.cosign(second.note, log.consistency_proof(10, 15), vkey, old_size=conflict.value.known_size)
    assert verify_cosignature(second.note + line, witness.verifier) > 0
    assert witness.last_seen(ORIGIN) == (15, second.root_hash)
    with pytest.raises(WitnessConflict):  # an old size ahead of the witness's is a conflict too
        witness.cosign(second.note, [], vkey, old_size=20)


def test_forks_raced_at_the_witness_get_one_cosignature_and_a_restart_remembers_it(tmp_path: Path) -> None:
    # Eight forks of one log (same key, each with its own last entry) asked at once from a fresh witness state:
    # one at most is cosigned, and a new Witness on the same database (a restart) still refuses the others.
    log_key = generate_log_key(ORIGIN)
    vkey = log_key.verifier.vkey()
    notes = []
    for fork in range(8):
        log = AuditLog(_engine(tmp_path / f"fork{fork}.db"))
        log.append_leaves([*(canonical_json({"n": i}) for i in range(9)), canonical_json({"fork": fork})])
        notes.append(log.checkpoint(log_key).note)
    axis_db = _engine(tmp_path / "axis.db")
    key = generate_witness_key("axis.example/witness")
    won: list[str] = []
    barrier = threading.Barrier(len(notes))

    def ask(note: str) -> None:
        barrier.wait()
        try:
            Witness(axis_db, key).cosign(note, [], vkey)
        except (WitnessRefusal, OperationalError):
            return
        won.append(note)

    threads = [threading.Thread(target=ask, args=(note,)) for note in notes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) <= 1
    restarted = Witness(axis_db, key)
    for note in notes:
        if note not in won:
            with pytest.raises(WitnessRefusal):
                restarted.cosign(note, [], vkey)
