"""The node's database: SQLAlchemy 2, SQLite by default (embedded), PostgreSQL in production.

Every table of the node derives from :class:`Base`, so one ``Base.metadata.create_all`` (or, in production,
an Alembic migration) makes the whole schema.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import URL, DateTime, Dialect, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import DeclarativeBase, sessionmaker
from sqlalchemy.types import TypeDecorator

from storage.errors import StorageError

SUPPORTED = "sqlite:///PATH (embedded) or postgresql+psycopg://USER@HOST:PORT/DATABASE (production)"


class DatabaseConfigError(StorageError, ValueError):
    """The database URL is unusable, or the database cannot be reached with it (cấu hình cơ sở dữ liệu sai)."""


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


def check_database_url(url: str) -> URL:
    """The parsed URL if it names a database the node supports with a driver that is installed; otherwise
    :class:`DatabaseConfigError` saying what to write instead. Nothing is connected to."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise DatabaseConfigError(f"not a database URL: {_hide(url)!r}; write {SUPPORTED}") from None
    backend = parsed.get_backend_name()
    if backend == "postgres":
        raise DatabaseConfigError(f"{_hide(url)!r}: write postgresql+psycopg://, not postgres://")
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseConfigError(f"{_hide(url)!r}: the node runs on SQLite or PostgreSQL only; write {SUPPORTED}")
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise DatabaseConfigError(
            f"{_hide(url)!r}: unknown driver {parsed.get_driver_name()!r}; write {SUPPORTED}"
        ) from None
    except ImportError as e:
        raise DatabaseConfigError(
            f"{_hide(url)!r}: the driver is not installed ({e}); install lienthong[postgres] "
            "and write postgresql+psycopg://"
        ) from None
    if backend == "postgresql" and not parsed.database:
        raise DatabaseConfigError(f"{_hide(url)!r} names no database: postgresql+psycopg://USER@HOST:PORT/DATABASE")
    return parsed


def _hide(url: str) -> str:
    """``url`` with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url.split("@")[-1] if "@" in url else url


@contextmanager
def connection_errors(engine: Engine) -> Iterator[None]:
    """A first connection that fails (server down, wrong password, no such database, unreadable SQLite file)
    as a :class:`DatabaseConfigError` naming the database without its password, instead of a driver trace."""
    try:
        yield
    except DBAPIError as e:
        if not e.connection_invalidated and e.statement is not None:
            raise  # a query failed on a working connection: not a configuration problem
        detail = " ".join(str(e.orig).split()) if e.orig is not None else str(e)
        raise DatabaseConfigError(
            f"cannot use the database {engine.url.render_as_string(hide_password=True)}: {detail}"
        ) from e


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; for SQLite, WAL journal, a busy timeout and foreign keys on every connection.

    WAL lets the API read while a worker writes; the busy timeout makes concurrent writers wait instead of
    failing with "database is locked". A URL the node cannot use raises :class:`DatabaseConfigError`.
    """
    check_database_url(url)
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
