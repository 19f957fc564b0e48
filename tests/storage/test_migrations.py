"""Schema migrations: the first revision is exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect

from storage.archive import ArchiveIndex, ArchiveQuery, ArchiveRecord
from storage.db import make_engine
from storage.migrate import FIRST_REVISION, current, head, schema_differences, upgrade


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_upgrade_makes_the_models_schema(engine: Engine) -> None:
    assert current(engine) is None
    assert upgrade(engine) == head()
    assert schema_differences(engine) == []
    assert upgrade(engine) == head()  # again: nothing to do


def test_text_search_works_on_a_migrated_database(engine: Engine) -> None:
    upgrade(engine)
    index = ArchiveIndex(engine)
    index.add(
        ArchiveRecord(
            agency="000.00.00.G12",
            direction="in",
            kind="document",
            message_id="a" * 64,
            document_id="000.01.41.H41,2026/11/16,245/BC-STC",
            object_key="sha256/" + "b" * 64,
            subject="Báo cáo tình hình thực hiện dự toán ngân sách nhà nước tháng 10/2026",
        )
    )
    found = index.search(ArchiveQuery(text="ngan sach thang"))
    assert [e.document_id for e in found.items] == ["000.01.41.H41,2026/11/16,245/BC-STC"]
    if engine.dialect.name == "sqlite":
        assert "archive_subject_fts" in inspect(engine).get_table_names()
    else:  # PostgreSQL answers LIKE '%word%' from a trigram index
        assert "ix_archive_subject_trgm" in {i["name"] for i in inspect(engine).get_indexes("archive_entries")}


def test_a_database_made_before_migrations_is_stamped_then_upgraded(tmp_path: Path) -> None:
    from sqlalchemy import text

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        # what create_schema made before migrations existed: the first revision's tables, and no alembic_version
        upgrade(engine, FIRST_REVISION)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE alembic_version"))
        assert current(engine) is None
        assert upgrade(engine) == head()
        assert head() >= FIRST_REVISION
    finally:
        engine.dispose()


def test_a_node_s_inbox_is_read_in_order_from_an_index_not_sorted(engine: Engine) -> None:
    """After a recipient was down for days its queued backlog is large; each look at its inbox must not sort it."""
    from sqlalchemy import select, text

    from storage.exchange import DeliveryRow

    upgrade(engine)
    assert "ix_deliveries_node_state_id" in {i["name"] for i in inspect(engine).get_indexes("deliveries")}
    if engine.dialect.name != "postgresql":
        return  # SQLite's indexes end with the rowid: in id order already
    listing = (
        select(DeliveryRow.id)
        .where(DeliveryRow.node_id == "bo-tai-chinh", DeliveryRow.state == "queued")
        .order_by(DeliveryRow.id)
        .limit(50)
    )
    sql = str(listing.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        connection.execute(text("SET enable_seqscan = off"))  # as the planner would choose for a large table
        plan = "\n".join(row[0] for row in connection.execute(text(f"EXPLAIN {sql}")))
    assert "ix_deliveries_node_state_id" in plan and "Sort" not in plan, plan
