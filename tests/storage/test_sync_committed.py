"""``sync_committed``: the write-ahead log of WAL-mode SQLite is synced on demand, once for many commits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

from storage import db


def _synced_inodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    inodes: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        inodes.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(db.os, "fsync", fsync)
    return inodes


def test_commits_stay_unsynced_until_asked_then_one_sync_covers_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path}/node.db")
    synced = _synced_inodes(monkeypatch)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE t (x INTEGER)"))
    for i in range(5):
        with engine.begin() as c:
            c.execute(text("INSERT INTO t VALUES (:x)"), {"x": i})
        with engine.connect() as c:
            assert c.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL: a commit does not sync
    db.sync_committed(engine)
    assert synced == [(tmp_path / "node.db-wal").stat().st_ino]
    engine.dispose()


def test_nothing_to_sync_without_a_log_or_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _synced_inodes(monkeypatch)
    memory = db.make_engine("sqlite://")
    db.sync_committed(memory)
    fresh = db.make_engine(f"sqlite:///{tmp_path}/never-opened.db")
    db.sync_committed(fresh)  # no connection yet: no log
    assert synced == []
    assert not (tmp_path / "never-opened.db").exists()
