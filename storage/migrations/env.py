"""Alembic environment: the node's tables (``storage.db.Base``) on the connection handed over by
:func:`storage.migrate.upgrade` (or a URL given with ``-x url=...`` on Alembic's own command line)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import storage.tables  # noqa: F401 (registers every table on Base.metadata)
from storage.db import Base
from storage.migrate import include_name

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True, include_name=include_name
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(str(url))
    with engine.connect() as conn:
        context.configure(
            connection=conn, target_metadata=target_metadata, render_as_batch=True, include_name=include_name
        )
        with context.begin_transaction():
            context.run_migrations()


run()
