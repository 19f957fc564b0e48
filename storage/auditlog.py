"""The node's append-only audit log (nhật ký kiểm toán): one RFC 9162 Merkle tree, one leaf per event.

Each event is stored as its RFC 8785 canonical JSON bytes, exactly the bytes hashed into its leaf. The hash of
every perfect subtree is stored as it completes, so inclusion and consistency proofs are one indexed lookup
at any size. Checkpoints (C2SP signed notes) commit to a size and root; :func:`verify_log` re-derives the
whole tree from the stored bytes, offline, and names the first entry that is not what was appended.

Appends lock the single ``audit_head`` row first: appenders in threads or processes queue on that lock
(SQLite: the write lock, waiting up to the busy timeout; PostgreSQL: the row lock), so indexes are never
shared or skipped. Batch with :meth:`AuditLog.append_many`: one transaction for many events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from storage._private.audit_tables import CHECKPOINTS, ENTRIES, HEAD, HEAD_ID, TREE
from storage._private.audit_tree import DbHashSource, decode_frontier, encode_frontier, extend, frontier_root
from storage._private.audit_verify import LogVerification, verify_log
from storage.canonical import event_leaf
from storage.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from storage.errors import AuditLogError
from storage.merkle import consistency_proof, inclusion_proof, leaf_hash, tree_root

_SELECT_HEAD = select(HEAD.c.size, HEAD.c.frontier).where(HEAD.c.id == HEAD_ID)
_LOCK_HEAD = update(HEAD).where(HEAD.c.id == HEAD_ID).values(size=HEAD.c.size).returning(HEAD.c.size, HEAD.c.frontier)

__all__ = ["AuditEntry", "AuditLog", "LogVerification", "StoredCheckpoint", "verify_log"]


@dataclass(frozen=True)
class AuditEntry:
    """One appended event: its index, leaf hash, exact bytes and append time."""

    index: int
    leaf_hash: bytes
    data: bytes
    appended_at: datetime

    def event(self) -> dict[str, Any]:
        """The event as a JSON object."""
        value = json.loads(self.data)
        assert isinstance(value, dict)
        return value


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint the log signed: the note as published, and the size and root it commits to."""

    id: int
    size: int
    root_hash: bytes
    note: str
    created_at: datetime


class AuditLog:
    """The audit log kept in the node's database (tables from :func:`storage.db.create_schema`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._ensure_head()

    def _ensure_head(self) -> None:
        with self._engine.connect() as conn:
            if conn.execute(select(HEAD.c.id).where(HEAD.c.id == HEAD_ID)).first() is not None:
                return
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(HEAD).values(id=HEAD_ID, size=0, frontier=b""))
        except IntegrityError:
            pass  # another process made it first

    @staticmethod
    def _lock_head(conn: Connection) -> tuple[int, bytes]:
        """Take the append lock (a write to the head row) and read the head under it."""
        row = conn.execute(_LOCK_HEAD).one()
        return int(row.size), bytes(row.frontier)

    # Appending.

    def append(self, event: Mapping[str, Any]) -> AuditEntry:
        """Append one event (a JSON object) in its own transaction."""
        return self.append_many([event])[0]

    def append_many(self, events: Iterable[Mapping[str, Any]]) -> list[AuditEntry]:
        """Append events in order, in one transaction: all get consecutive indexes, or none is appended."""
        return self.append_leaves([event_leaf(event) for event in events])

    def append_leaves(self, leaves: Sequence[bytes]) -> list[AuditEntry]:
        """Append leaves that are already canonical JSON bytes (from :func:`storage.canonical.event_leaf`).

        For bulk loads and replication; the bytes are stored and hashed as given.
        """
        if not leaves:
            return []
        with self._engine.begin() as conn:
            return self._append(conn, leaves)

    def append_in(self, conn: Connection, events: Iterable[Mapping[str, Any]]) -> list[AuditEntry]:
        """Append events inside the caller's transaction on ``conn``: they are committed (or rolled back)
        together with whatever else the transaction changes, so a state change and its event cannot part."""
        leaves = [event_leaf(event) for event in events]
        return self._append(conn, leaves) if leaves else []

    def _append(self, conn: Connection, leaves: Sequence[bytes]) -> list[AuditEntry]:
        hashes = [leaf_hash(data) for data in leaves]
        now = datetime.now(UTC)
        size, blob = self._lock_head(conn)
        frontier, tree_rows = extend(size, decode_frontier(size, blob), hashes)
        conn.execute(
            insert(ENTRIES),
            [{"idx": size + i, "data": data, "appended_at": now} for i, data in enumerate(leaves)],
        )
        conn.execute(insert(TREE), tree_rows)
        conn.execute(
            update(HEAD).where(HEAD.c.id == HEAD_ID).values(size=size + len(leaves), frontier=encode_frontier(frontier))
        )
        return [AuditEntry(size + i, h, data, now) for i, (h, data) in enumerate(zip(hashes, leaves, strict=True))]

    # Reading.

    def _head(self, conn: Connection) -> tuple[int, bytes]:
        row = conn.execute(_SELECT_HEAD).one()
        return int(row.size), bytes(row.frontier)

    def size(self) -> int:
        """How many events the log holds."""
        with self._engine.connect() as conn:
            return self._head(conn)[0]

    def _check_size(self, conn: Connection, size: int | None) -> int:
        current = self._head(conn)[0]
        if size is None:
            return current
        if not 0 <= size <= current:
            raise AuditLogError(f"tree size {size} is not between 0 and the log's size {current}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the first ``size`` events (default: all)."""
        with self._engine.connect() as conn:
            size = self._check_size(conn, size)
            return tree_root(DbHashSource(conn), size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The proof that event ``index`` is in the tree of ``size`` events (default: the whole log)."""
        with self._engine.connect() as conn:
            size = self._check_size(conn, size)
            if not 0 <= index < size:
                raise AuditLogError(f"event {index} is not in a tree of {size} events")
            return inclusion_proof(DbHashSource(conn), index, size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """The proof that the tree of ``size1`` events is a prefix of the one of ``size2`` (default: all)."""
        with self._engine.connect() as conn:
            size2 = self._check_size(conn, size2)
            if not 0 < size1 <= size2:
                raise AuditLogError(f"no consistency proof from size {size1} to size {size2}")
            return consistency_proof(DbHashSource(conn), size1, size2)

    def entries(self, start: int, stop: int) -> list[AuditEntry]:
        """Events ``start`` to ``stop - 1`` (those that exist), in index order."""
        query = (
            select(ENTRIES.c.idx, TREE.c.hash, ENTRIES.c.data, ENTRIES.c.appended_at)
            .join(TREE, (TREE.c.level == 0) & (TREE.c.idx == ENTRIES.c.idx))
            .where(ENTRIES.c.idx >= start, ENTRIES.c.idx < stop)
            .order_by(ENTRIES.c.idx)
        )
        with self._engine.connect() as conn:
            return [AuditEntry(int(i), bytes(h), bytes(d), t) for i, h, d, t in conn.execute(query)]

    def entry(self, index: int) -> AuditEntry:
        """Event ``index``."""
        found = self.entries(index, index + 1)
        if not found:
            raise AuditLogError(f"no event {index} in the audit log")
        return found[0]

    # Checkpoints.

    def checkpoint(self, signer: NoteSigner, extensions: Sequence[str] = ()) -> StoredCheckpoint:
        """Sign, store and return a checkpoint of the whole log; the key's name is the origin line.

        The head is locked meanwhile so stored checkpoints never go backwards in size.
        """
        with self._engine.begin() as conn:
            size, blob = self._lock_head(conn)
            root = frontier_root(decode_frontier(size, blob))
            note = sign_checkpoint(Checkpoint(signer.name, size, root, tuple(extensions)), signer)
            now = datetime.now(UTC)
            new_id = conn.execute(
                insert(CHECKPOINTS).values(size=size, root_hash=root, note=note, created_at=now)
            ).inserted_primary_key
            assert new_id is not None
        return StoredCheckpoint(int(new_id[0]), size, root, note, now)

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.id)).all()
        return [StoredCheckpoint(r.id, r.size, bytes(r.root_hash), r.note, r.created_at) for r in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The most recent checkpoint, if any."""
        with self._engine.connect() as conn:
            r = conn.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.id.desc()).limit(1)).first()
        return None if r is None else StoredCheckpoint(r.id, r.size, bytes(r.root_hash), r.note, r.created_at)
