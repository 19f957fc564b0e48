"""The node's database: SQLAlchemy 2, SQLite by default (embedded), PostgreSQL in production.

Every table of the node derives from :class:`Base`, so one ``Base.metadata.create_all`` (or, in production,
an Alembic migration) makes the whole schema.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, sessionmaker
from sqlalchemy.types import TypeDecorator


class Base(DeclarativeBase):
    """The declarative base of every table of the node."""


class UtcDateTime(TypeDecorator[datetime]):
    """A point in time, always timezone-aware UTC in Python, whatever the database keeps (SQLite: naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: give the time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; for SQLite, WAL journal, a busy timeout and foreign keys on every connection.

    WAL lets the API read while a worker writes; the busy timeout makes concurrent writers wait instead of
    failing with "database is locked".
    """
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    return engine


def sync_committed(engine: Engine) -> None:
    """Make every transaction committed so far survive a power loss, not only a crash of the process.

    WAL-mode SQLite with ``synchronous=NORMAL`` (set above, so that a commit costs no sync) syncs its
    write-ahead log only at checkpoints: a commit survives the process being killed, but may roll back if
    the machine loses power. A node calls this before it promises what it committed (202 to a sender,
    ``done`` to its axis): one sync of the log then covers every commit before it, a whole batch at once.
    Other databases (PostgreSQL) sync at commit; nothing to do.
    """
    if engine.dialect.name != "sqlite":
        return
    database = engine.url.database
    if not database or database == ":memory:" or engine.url.query.get("mode") == "memory":
        return
    try:
        fd = os.open(f"{database}-wal", os.O_RDONLY)
    except FileNotFoundError:
        return  # no log: every commit is already in the database file, which its checkpoint synced
    try:
        os.fsync(fd)  # the log's pages, whichever connection wrote them
    finally:
        os.close(fd)


def create_schema(engine: Engine) -> None:
    """Create every table that does not exist yet (the embedded default; production runs migrations)."""
    import storage.tables  # noqa: F401 (registers every table on Base.metadata)

    Base.metadata.create_all(engine)


def session_factory(engine: Engine) -> sessionmaker[Any]:
    """Sessions bound to ``engine`` that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
