"""Tables of the audit log (nhật ký kiểm toán): entries, tree nodes, the append head, checkpoints.

The tree table keeps every perfect subtree as it completes, leaves (level 0) included: a proof is one lookup
of about 2·log2(n) rows, and the leaf hashes kept apart from the entry bytes let ``verify_log`` name an edited,
inserted, removed or moved entry exactly: its bytes no longer hash to the leaf hash kept for its index.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, Integer, LargeBinary, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, UtcDateTime

# SQLite makes an INTEGER PRIMARY KEY the rowid (compact, fast); elsewhere indexes need 64 bits.
_Index = BigInteger().with_variant(Integer(), "sqlite")


class AuditEntryRow(Base):
    """One event of the log: its RFC 8785 canonical JSON bytes, exactly as hashed (sự kiện kiểm toán)."""

    __tablename__ = "audit_entries"

    idx: Mapped[int] = mapped_column(_Index, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    # When the node appended it; for queries only: the time that is proven is the one inside ``data``.
    appended_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditTreeRow(Base):
    """The hash of the perfect subtree of ``2**level`` leaves starting at leaf ``idx << level``."""

    __tablename__ = "audit_tree"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012 - SQLAlchemy reads a plain dict here

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditHeadRow(Base):
    """The append cursor: one row, locked by every append so two appenders never take the same index.

    ``frontier`` caches the hashes of the perfect subtrees covering ``[0, size)``, largest first, so an append
    reads one row; ``verify_log`` checks it against the entries.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    frontier: Mapped[bytes] = mapped_column(LargeBinary)


class AuditCheckpointRow(Base):
    """A checkpoint the log signed (điểm kiểm đã ký), as the exact note text that was published."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


ENTRIES = cast(Table, AuditEntryRow.__table__)
TREE = cast(Table, AuditTreeRow.__table__)
HEAD = cast(Table, AuditHeadRow.__table__)
CHECKPOINTS = cast(Table, AuditCheckpointRow.__table__)
HEAD_ID = 1
