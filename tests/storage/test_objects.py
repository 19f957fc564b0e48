"""Local backend of the write-once object store, key handling and retention policy."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import (
    InvalidObjectKeyError,
    ObjectCorruptError,
    ObjectExistsError,
    ObjectLockError,
    ObjectNotFoundError,
    ObjectStore,
    ObjectStoreConfigError,
    RetentionPolicy,
    content_key,
    open_object_store,
)
from storage._private.local_objects import TEMP_PREFIX, LocalObjectStore

POLICY = RetentionPolicy(default_days=30, per_class={"report": 3650, "status": 1825, "scratch": 0})
DATA = "Báo cáo tình hình kinh tế - xã hội tháng 6".encode()


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    opened = open_object_store(str(tmp_path / "objects"), POLICY)
    assert isinstance(opened, LocalObjectStore)
    return opened


def _file(store: LocalObjectStore, key: str) -> Path:
    return store._path(key)


# --- keys, URLs, retention -------------------------------------------------------------------------


def test_content_key_is_sha256_hex() -> None:
    assert content_key(b"abc") == "sha256/" + hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize(
    "key",
    [
        "",
        "abc",
        "sha256/" + "A" * 64,
        "sha256/" + "0" * 63,
        "sha256/../../etc/passwd",
        "md5/" + "0" * 64,
        "sha256/" + "0" * 64 + "\n",
    ],
)
def test_malformed_keys_are_refused_before_touching_disk(store: LocalObjectStore, key: str) -> None:
    with pytest.raises(InvalidObjectKeyError):
        store.get(key)
    with pytest.raises(InvalidObjectKeyError):
        store.exists(key)


def test_open_by_file_url_and_plain_path(tmp_path: Path) -> None:
    by_url = open_object_store((tmp_path / "a b").as_uri())
    assert isinstance(by_url, LocalObjectStore)
    assert by_url.root == tmp_path / "a b"
    assert isinstance(by_url, ObjectStore)
    ref = by_url.put(DATA)
    assert open_object_store(str(tmp_path / "a b")).get(ref.key) == DATA


@pytest.mark.parametrize("url", ["http://example.org/x", "file://otherhost/x", "file:///x?y=1", ""])
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ObjectStoreConfigError):
        open_object_store(url)


def test_retention_policy_per_class() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert POLICY.days_for("report") == 3650
    assert POLICY.days_for("unknown") == 30
    assert POLICY.days_for(None) == 30
    assert POLICY.retain_until("status", now) == now + timedelta(days=1825)
    assert POLICY.retain_until("scratch", now) is None
    assert RetentionPolicy.from_config({"default_days": 5, "per_class": {"report": 10}}).days_for("report") == 10


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"default_days": -1}, "between 0 and 36500 days"),
        ({"default_days": True}, "whole number"),
        ({"default_days": "10"}, "whole number"),
        ({"default_days": 10**6}, "between 0 and 36500 days"),
        ({"default_days": 1, "per_class": {"Report": 1}}, "lowercase"),
        ({"default_days": 1, "per_class": {"report": 1.5}}, "document class 'report'"),
        ({"default_days": 1, "per_class": ["report"]}, "mapping"),
        ({"per_class": {}}, "needs default_days"),
        ({"default_days": 1, "days": 2}, "unknown retention setting"),
    ],
)
def test_retention_policy_validation(config: dict[str, object], message: str) -> None:
    with pytest.raises(ObjectStoreConfigError, match=message):
        RetentionPolicy.from_config(config)


def test_retention_policy_is_immutable() -> None:
    per_class = {"report": 10}
    policy = RetentionPolicy(default_days=1, per_class=per_class)
    per_class["report"] = 0
    assert policy.days_for("report") == 10
    with pytest.raises(TypeError):
        policy.per_class["report"] = 0  # type: ignore[index]


# --- local backend ---------------------------------------------------------------------------------


def test_put_get_stat(store: LocalObjectStore) -> None:
    before = datetime.now(UTC)
    ref = store.put(DATA, document_class="report", content_type="application/xml")
    assert ref.key == content_key(DATA)
    assert ref.size == len(DATA)
    assert store.exists(ref.key)
    assert store.get(ref.key) == DATA
    info = store.stat(ref.key)
    assert (info.size, info.sha256, info.content_type, info.document_class) == (
        len(DATA),
        ref.sha256,
        "application/xml",
        "report",
    )
    assert info.retain_until is not None
    assert before + timedelta(days=3650) <= info.retain_until <= datetime.now(UTC) + timedelta(days=3650)
    assert not info.legal_hold
    path = _file(store, ref.key)
    assert path.relative_to(store.root).parts == ("sha256", ref.sha256[:2], ref.sha256)
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


def test_same_bytes_again_is_idempotent(store: LocalObjectStore) -> None:
    first = store.put(DATA, document_class="report")
    again = store.put(DATA, document_class="status")
    assert again == first
    assert store.stat(first.key).document_class == "report"  # the first store decides, never rewritten


def test_missing_object(store: LocalObjectStore) -> None:
    key = content_key(b"never stored")
    assert not store.exists(key)
    with pytest.raises(ObjectNotFoundError):
        store.get(key)
    with pytest.raises(ObjectNotFoundError):
        store.stat(key)
    with pytest.raises(ObjectNotFoundError):
        store.set_legal_hold(key, True)


def test_corruption_is_detected_on_read(store: LocalObjectStore) -> None:
    ref = store.put(DATA)
    path = _file(store, ref.key)
    path.chmod(0o644)
    path.write_bytes(DATA.replace(b"6", b"7"))
    with pytest.raises(ObjectCorruptError, match=ref.key):
        store.get(ref.key)
    # ... and a put of the original bytes refuses to "repair" by overwriting: the evidence stays.
    with pytest.raises(ObjectExistsError):
        store.put(DATA)


def test_overwrite_is_refused(store: LocalObjectStore) -> None:
    """A key can only ever hold its own bytes: forcing other bytes under it (as a buggy or hostile
    writer reusing the create path would) is refused and the original remains."""
    ref = store.put(DATA)
    from storage._private.local_objects import _create_once

    assert _create_once(_file(store, ref.key), b"forged", 0o444) is False
    assert store.get(ref.key) == DATA
    assert stat.S_IMODE(_file(store, ref.key).stat().st_mode) == 0o444
    if os.geteuid() != 0:  # root ignores file modes
        with pytest.raises(PermissionError):
            _file(store, ref.key).open("r+b")  # read-only file: an accidental in-place write fails too
    assert not any(p.name.startswith(TEMP_PREFIX) for p in store.root.rglob("*"))


def test_delete_refused_while_retained_or_held(store: LocalObjectStore) -> None:
    ref = store.put(DATA, document_class="report")
    with pytest.raises(ObjectLockError, match="retained until"):
        store.delete(ref.key)
    assert store.get(ref.key) == DATA

    scratch = store.put(b"temporary", document_class="scratch", legal_hold=True)
    assert store.stat(scratch.key).retain_until is None
    assert store.stat(scratch.key).legal_hold
    with pytest.raises(ObjectLockError, match="legal hold"):
        store.delete(scratch.key)
    store.set_legal_hold(scratch.key, False)
    store.set_legal_hold(scratch.key, False)  # lifting twice is harmless
    store.delete(scratch.key)
    assert not store.exists(scratch.key)
    assert list(_file(store, scratch.key).parent.iterdir()) == []
    with pytest.raises(ObjectNotFoundError):
        store.delete(scratch.key)


def test_delete_allowed_after_retention_expired(store: LocalObjectStore) -> None:
    ref = store.put(DATA, document_class="status")
    meta = _file(store, ref.key).with_name(ref.sha256 + ".meta")
    # Age the object by rewriting its metadata as if it had been stored six years ago.
    record = json.loads(meta.read_bytes())
    record["retain_until"] = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    meta.unlink()
    meta.write_text(json.dumps(record))
    store.delete(ref.key)
    assert not store.exists(ref.key)


def test_missing_metadata_fails_closed(store: LocalObjectStore) -> None:
    ref = store.put(b"x", document_class="scratch")
    _file(store, ref.key).with_name(ref.sha256 + ".meta").unlink()
    with pytest.raises(ObjectCorruptError, match="metadata"):
        store.delete(ref.key)
    assert store.get(ref.key) == b"x"


def test_leftover_temp_files_are_ignored(store: LocalObjectStore) -> None:
    """A crash between writing the temp file and linking it leaves a ``.tmp-*`` file: it is not an
    object, does not block storing the same bytes, and is never read."""
    key = content_key(DATA)
    directory = _file(store, key).parent
    directory.mkdir(parents=True)
    partial = directory / f"{TEMP_PREFIX}{key.split('/')[1]}-deadbeef"
    partial.write_bytes(DATA[:5])
    (directory / f"{TEMP_PREFIX}{key.split('/')[1]}.meta-deadbeef").write_bytes(b"{")
    assert not store.exists(key)
    ref = store.put(DATA)
    assert store.get(ref.key) == DATA
    assert partial.read_bytes() == DATA[:5]  # left alone: it might be another writer's, mid-write


def test_concurrent_puts_of_same_bytes_from_threads(store: LocalObjectStore) -> None:
    payloads = [DATA] * 32 + [DATA + bytes([i]) for i in range(8)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        refs = list(pool.map(lambda b: store.put(b, document_class="report"), payloads))
    assert len({r.key for r in refs[:32]}) == 1
    for ref, payload in zip(refs, payloads, strict=True):
        assert store.get(ref.key) == payload
    leftovers = [p for p in store.root.rglob("*") if p.name.startswith(TEMP_PREFIX)]
    assert leftovers == []


def _put_in_child(root: str) -> str:
    return open_object_store(root, POLICY).put(DATA, document_class="report").key


def test_concurrent_puts_of_same_bytes_from_processes(store: LocalObjectStore) -> None:
    ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    with ctx.Pool(4) as pool:
        keys = pool.map(_put_in_child, [str(store.root)] * 8)
    assert set(keys) == {content_key(DATA)}
    assert store.get(keys[0]) == DATA


def test_new_object_costs_three_syncs_and_meta_precedes_bytes(
    store: LocalObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bytes and metadata are each synced before either name appears; one directory sync covers both names."""
    from storage._private import local_objects

    data = b"bytes whose directories exist already"
    _file(store, local_objects.content_key(data)).parent.mkdir(parents=True)
    events: list[str] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd: int) -> None:
        events.append("sync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "sync-file")
        real_fsync(fd)

    def link(src: object, dst: object) -> None:
        events.append("link-meta" if str(dst).endswith(".meta") else "link-bytes")
        real_link(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(local_objects.os, "fsync", fsync)
    monkeypatch.setattr(local_objects.os, "link", link)
    store.put(data, document_class="report")
    assert events == ["sync-file", "sync-file", "link-meta", "link-bytes", "sync-dir"]
    assert store.stat(local_objects.content_key(data)).document_class == "report"


def test_bytes_left_without_metadata_by_a_crash_get_it_on_the_next_put(store: LocalObjectStore) -> None:
    ref = store.put(DATA, document_class="report")
    meta = _file(store, ref.key).with_name(_file(store, ref.key).name + ".meta")
    meta.unlink()  # what a crash between the links and the directory sync can leave
    with pytest.raises(ObjectCorruptError, match="metadata missing"):
        store.stat(ref.key)
    with pytest.raises(ObjectCorruptError):
        store.delete(ref.key)  # fail closed: retention unknown
    assert store.put(DATA, document_class="report") == ref
    info = store.stat(ref.key)
    assert info.document_class == "report" and info.retain_until is not None
    with pytest.raises(ObjectLockError):
        store.delete(ref.key)


def test_a_new_store_says_its_layout_and_uses_one_level_of_directories(tmp_path: Path) -> None:
    store = open_object_store(str(tmp_path / "objects"), POLICY)
    ref = store.put(DATA)
    assert (tmp_path / "objects" / "LAYOUT").read_text() == "sha256/ab/<sha256>\n"
    assert (tmp_path / "objects" / "sha256" / ref.sha256[:2] / ref.sha256).read_bytes() == DATA
    # opened again (another process, a restart): same layout, same object
    assert open_object_store(str(tmp_path / "objects"), POLICY).get(ref.key) == DATA


def test_a_store_from_before_the_layout_file_keeps_its_two_levels(tmp_path: Path) -> None:
    """Nothing is moved: objects of an older store stay where they are, and new ones go beside them."""
    root = tmp_path / "objects"
    digest = hashlib.sha256(DATA).hexdigest()
    old = root / "sha256" / digest[:2] / digest[2:4] / digest
    old.parent.mkdir(parents=True)
    old.write_bytes(DATA)
    meta = {"content_type": "text/plain", "document_class": None, "stored_at": "2025-01-01T00:00:00+00:00"}
    old.with_name(digest + ".meta").write_text(json.dumps({**meta, "retain_until": None}))
    store = open_object_store(str(root), POLICY)
    assert (root / "LAYOUT").read_text() == "sha256/ab/cd/<sha256>\n"
    assert store.get("sha256/" + digest) == DATA
    assert store.stat("sha256/" + digest).content_type == "text/plain"
    new = store.put(b"after the upgrade")
    assert (root / "sha256" / new.sha256[:2] / new.sha256[2:4] / new.sha256).is_file()


def test_an_unknown_layout_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    root.mkdir()
    (root / "LAYOUT").write_text("flat\n")
    with pytest.raises(ObjectStoreConfigError, match="unknown object store layout 'flat'"):
        open_object_store(str(root), POLICY)
    assert sorted(p.name for p in root.iterdir()) == ["LAYOUT"]


def test_put_all_stores_each_object_and_keeps_the_order(store: LocalObjectStore) -> None:
    from storage import ObjectPut, put_all

    puts = [ObjectPut(b"report %d" % i, "report", "application/json") for i in range(6)]
    refs = put_all(store, puts)
    assert [r.key for r in refs] == [content_key(p.data) for p in puts]
    for ref, put in zip(refs, puts, strict=True):
        assert store.get(ref.key) == put.data
        assert store.stat(ref.key).document_class == "report"


def test_put_all_raises_a_failure_only_after_the_others_are_stored(store: LocalObjectStore) -> None:
    from storage import ObjectPut, put_all

    good, bad = ObjectPut(b"kept", "report"), ObjectPut(b"refused", "no such class!")
    with pytest.raises(ValueError, match="class"):
        put_all(store, [good, bad, ObjectPut(b"also kept")])
    assert store.get(content_key(b"kept")) == b"kept"
    assert store.get(content_key(b"also kept")) == b"also kept"
    assert not store.exists(content_key(b"refused"))
