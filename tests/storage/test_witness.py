"""The witness cosigns honest growth and refuses forks, rollbacks and foreign keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from storage.auditlog import AuditLog
from storage.canonical import canonical_json
from storage.checkpoint import add_signatures, generate_log_key, generate_witness_key, parse_note, verify_cosignature
from storage.db import create_schema, make_engine
from storage.errors import CheckpointError, WitnessRefusal
from storage.witness import Witness

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
