"""Schema migrations: the first revision is exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect

from storage.archive import ArchiveIndex, ArchiveQuery, ArchiveRecord
from storage.db import create_schema, make_engine
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
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        create_schema(engine)
        assert current(engine) is None
        assert upgrade(engine) == head()
        assert head() >= FIRST_REVISION
    finally:
        engine.dispose()
