"""Schema migrations (Alembic): a node's database is brought to the current schema at start.

The embedded default and production run the same migrations (``storage/migrations``). A database made
before migrations existed (by ``create_schema``) is recognised and stamped at the first revision, which is
exactly that schema.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from storage.db import connection_errors

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FIRST_REVISION = "0001"
FTS_PREFIX = "archive_subject_fts"
HAND_MADE_INDEXES = frozenset({"ix_archive_subject_trgm"})


def include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    """What Alembic compares: not the text-search structures the migrations make by hand for one database
    (SQLite's FTS5 table and its shadow tables, PostgreSQL's trigram index)."""
    if type_ == "table" and name is not None and name.startswith(FTS_PREFIX):
        return False
    return not (type_ == "index" and name in HAND_MADE_INDEXES)


def schema_differences(engine: Engine) -> list[object]:
    """How the database's schema differs from the models (empty when it is current)."""
    from alembic.autogenerate import compare_metadata

    import storage.tables  # noqa: F401 (every table on Base.metadata)
    from storage.db import Base

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        return list(compare_metadata(context, Base.metadata))


def _config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def head() -> str:
    """The newest revision this program knows."""
    revision = ScriptDirectory.from_config(_config_for_scripts()).get_current_head()
    assert revision is not None
    return revision


def _config_for_scripts() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def current(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated). DatabaseConfigError if it cannot be reached."""
    with connection_errors(engine), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Bring the database to ``revision`` (default: the newest); the revision it is at afterwards.

    A database that cannot be reached (server down, wrong password, no such database) raises
    :class:`~storage.db.DatabaseConfigError` before anything is changed."""
    config = _config(engine)
    with connection_errors(engine), engine.connect():
        pass  # the first connection: a configuration problem is reported as one, not as a migration failure
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        tables = set(inspect(conn).get_table_names())
        if "alembic_version" not in tables and "audit_head" in tables:
            command.stamp(config, FIRST_REVISION)  # made by create_schema before migrations existed
        command.upgrade(config, revision)
    now = current(engine)
    assert now is not None
    return now
