"""A witness (bên chứng kiến) of other nodes' audit logs: cosigns a checkpoint only if it extends the last one.

The axis witnesses its agency nodes (and they it): for each log origin it keeps the last checkpoint it cosigned
and the log's verifier key. A new checkpoint is cosigned (C2SP tlog-cosignature/v1) only when

* it is signed by that log's key (the key first seen for the origin stays: a different one is refused);
* it is not smaller than the last one (rollback);
* at the same size it has the same root, and at a larger size the consistency proof from the last one verifies
  (otherwise the log forked: it rewrote its history).

So a node that rewrote its history is caught at its next checkpoint. The first checkpoint of a log is trusted
as seen (there is nothing earlier to compare with).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import BigInteger, Engine, LargeBinary, String, Table, Text, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from storage.checkpoint import COSIGNATURE_V1, NoteSigner, NoteVerifier, cosign, verify_checkpoint
from storage.db import Base, UtcDateTime
from storage.errors import CheckpointError, MerkleProofError, WitnessRefusal
from storage.merkle import EMPTY_ROOT, verify_consistency


class WitnessConflict(WitnessRefusal):
    """The log's idea of the last size this witness cosigned is not the witness's (c2sp.org/tlog-witness:
    409 Conflict with the witness's size): not a fork, the log retries with a proof from :attr:`known_size`."""

    def __init__(self, message: str, known_size: int) -> None:
        super().__init__(message)
        self.known_size = known_size


class WitnessStateRow(Base):
    """Per log origin, the last checkpoint this witness cosigned."""

    __tablename__ = "witness_state"

    origin: Mapped[str] = mapped_column(String(255), primary_key=True)
    log_key: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


_STATE = cast(Table, WitnessStateRow.__table__)


class Witness:
    """Cosigns other logs' checkpoints with this node's witness key (type 0x04), refusing forks."""

    def __init__(self, engine: Engine, key: NoteSigner) -> None:
        if key.sig_type != COSIGNATURE_V1:
            raise CheckpointError("a witness key is a cosignature/v1 (type 0x04) key: see generate_witness_key")
        self._engine = engine
        self._key = key

    @property
    def verifier(self) -> NoteVerifier:
        """The key logs and auditors use to check this witness's cosignatures."""
        return self._key.verifier

    def last_seen(self, origin: str) -> tuple[int, bytes] | None:
        """The size and root of the last checkpoint cosigned for ``origin``."""
        with self._engine.connect() as conn:
            row = conn.execute(select(_STATE.c.size, _STATE.c.root_hash).where(_STATE.c.origin == origin)).first()
        return None if row is None else (int(row.size), bytes(row.root_hash))

    def cosign(
        self,
        note: str,
        consistency_proof: Sequence[bytes],
        log_verifier_key: str,
        *,
        timestamp: int | None = None,
        old_size: int | None = None,
    ) -> str:
        """Check the log's checkpoint ``note`` against the last one seen and return the cosignature line.

        ``consistency_proof`` goes from the last size this witness cosigned for the origin to the note's size
        (empty for the first checkpoint or the same size). ``old_size`` is that size as the log believes it
        (tlog-witness's ``old`` line; 0 for none): when it is not the witness's, :class:`WitnessConflict` gives
        the witness's size instead of judging a proof made from another size a fork. Raises
        :class:`WitnessRefusal` saying why.
        """
        try:
            log_key = NoteVerifier.from_vkey(log_verifier_key)
            checkpoint, _ = verify_checkpoint(note, log_key)
        except CheckpointError as exc:
            raise WitnessRefusal(f"checkpoint refused: {exc}") from exc
        origin = checkpoint.origin
        if checkpoint.size == 0 and checkpoint.root_hash != EMPTY_ROOT:
            raise WitnessRefusal(f"{origin}: a checkpoint of size 0 has the empty tree's root, not another")
        with self._engine.begin() as conn:
            row = conn.execute(select(_STATE).where(_STATE.c.origin == origin)).first()
            known = 0 if row is None else int(row.size)
            if old_size is not None and old_size != known:
                raise WitnessConflict(
                    f"{origin}: the last checkpoint this witness cosigned has size {known}, not {old_size}: "
                    f"send a consistency proof from {known}",
                    known,
                )
            if row is not None:
                if row.log_key != log_key.vkey():
                    raise WitnessRefusal(f"{origin}: signed by another key than the one this witness knows")
                old_size, old_root = int(row.size), bytes(row.root_hash)
                if checkpoint.size < old_size:
                    raise WitnessRefusal(
                        f"{origin}: size {checkpoint.size} is smaller than {old_size} already cosigned (rollback)"
                    )
                if old_size > 0:
                    try:
                        verify_consistency(old_size, checkpoint.size, consistency_proof, old_root, checkpoint.root_hash)
                    except MerkleProofError as exc:
                        raise WitnessRefusal(
                            f"{origin}: not consistent with the checkpoint of size {old_size} already cosigned, "
                            f"the log forked or rewrote its history: {exc}"
                        ) from exc
            now = datetime.now(UTC)
            values = {
                "log_key": log_key.vkey(),
                "size": checkpoint.size,
                "root_hash": checkpoint.root_hash,
                "note": note,
                "updated_at": now,
            }
            try:
                if row is None:
                    conn.execute(insert(_STATE).values(origin=origin, **values))
                else:
                    # compare-and-set: a concurrent cosign for the same origin must not be overwritten unseen
                    done = conn.execute(
                        update(_STATE)
                        .where(
                            _STATE.c.origin == origin, _STATE.c.size == row.size, _STATE.c.root_hash == row.root_hash
                        )
                        .values(**values)
                    )
                    if done.rowcount != 1:
                        raise WitnessRefusal(f"{origin}: another checkpoint was cosigned meanwhile; retry")
            except IntegrityError as exc:
                raise WitnessRefusal(f"{origin}: another checkpoint was cosigned meanwhile; retry") from exc
        stamp = int(time.time()) if timestamp is None else timestamp
        return cosign(checkpoint.text(), self._key, stamp).line()
