"""S3 backend against a real S3 server with object lock (SeaweedFS, started by the ``s3_server`` fixture).

The "Must show" of issue 5: an archived object cannot be deleted or overwritten — tried both through
the store and through a raw S3 client, the way an operator with the bucket's credentials could.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.error import S3Error
from minio.retention import Retention

from storage import (
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
from storage._private.s3_objects import META_SHA256, S3ObjectStore
from tests.storage.s3server import S3Server

POLICY = RetentionPolicy(default_days=1, per_class={"report": 3650, "status": 1825, "scratch": 0})
DATA = "Báo cáo thống kê quý II — bản đã ký".encode()


@pytest.fixture
def raw(s3_server: S3Server) -> Minio:
    return Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=False, region=s3_server.region)


@pytest.fixture
def store(s3_server: S3Server) -> S3ObjectStore:
    opened = open_object_store(s3_server.url(f"lt-{uuid.uuid4().hex[:12]}"), POLICY)
    assert isinstance(opened, S3ObjectStore)
    assert isinstance(opened, ObjectStore)
    return opened


def _read(raw: Minio, bucket: str, key: str, version_id: str | None = None) -> bytes:
    response = raw.get_object(bucket, key, version_id=version_id)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def test_bucket_is_created_with_object_lock(store: S3ObjectStore, raw: Minio) -> None:
    raw.get_object_lock_config(store.bucket)  # raises if the bucket has no object lock
    assert raw.get_bucket_versioning(store.bucket).status == "Enabled"


def test_put_get_stat_with_compliance_retention(store: S3ObjectStore, raw: Minio) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    ref = store.put(DATA, document_class="report", content_type="application/xml")
    assert ref.key == content_key(DATA)
    assert ref.version_id
    assert store.get(ref.key) == DATA
    assert store.exists(ref.key)
    info = store.stat(ref.key)
    assert (info.size, info.sha256, info.content_type, info.document_class, info.legal_hold) == (
        len(DATA),
        ref.sha256,
        "application/xml",
        "report",
        False,
    )
    assert info.retain_until is not None
    assert before + timedelta(days=3650) <= info.retain_until <= datetime.now(UTC) + timedelta(days=3650, seconds=1)
    lock = raw.get_object_retention(store.bucket, ref.key, version_id=ref.version_id)
    assert lock is not None
    assert lock.mode == COMPLIANCE
    assert store.put(DATA, document_class="status") == ref  # idempotent, same version


def test_missing_and_malformed(store: S3ObjectStore) -> None:
    key = content_key(b"never stored")
    assert not store.exists(key)
    with pytest.raises(ObjectNotFoundError):
        store.get(key)
    with pytest.raises(ObjectNotFoundError):
        store.stat(key)


def test_locked_object_cannot_be_deleted(store: S3ObjectStore, raw: Minio) -> None:
    ref = store.put(DATA, document_class="report")

    # Through the store: refused before asking the server.
    with pytest.raises(ObjectLockError, match="retained until"):
        store.delete(ref.key)

    # Through the raw client, naming the version: the server refuses.
    with pytest.raises(S3Error) as refused:
        raw.remove_object(store.bucket, ref.key, version_id=ref.version_id)
    assert refused.value.code == "AccessDenied"

    # Without a version id S3 only adds a delete marker (allowed even under COMPLIANCE): the bytes stay,
    # and the store still finds and serves them.
    raw.remove_object(store.bucket, ref.key)
    assert _read(raw, store.bucket, ref.key, ref.version_id) == DATA
    assert store.exists(ref.key)
    assert store.get(ref.key) == DATA
    assert store.put(DATA) == ref  # no second copy: the locked original is found

    # Nor can the lock be shortened, weakened or the bucket's versioning switched off.
    with pytest.raises(S3Error):
        raw.set_object_retention(
            store.bucket,
            ref.key,
            Retention(COMPLIANCE, datetime.now(UTC) + timedelta(days=1)),
            version_id=ref.version_id,
        )
    with pytest.raises(S3Error):
        raw.set_object_retention(
            store.bucket,
            ref.key,
            Retention(GOVERNANCE, datetime.now(UTC) + timedelta(days=1)),
            version_id=ref.version_id,
        )
    with pytest.raises(S3Error):
        raw.remove_object(store.bucket, ref.key, version_id=ref.version_id)
    assert _read(raw, store.bucket, ref.key, ref.version_id) == DATA


def test_locked_object_cannot_be_overwritten(store: S3ObjectStore, raw: Minio) -> None:
    ref = store.put(DATA, document_class="report")

    # A conditional write (what the store itself sends) is refused by the server.
    with pytest.raises(S3Error) as refused:
        raw._put_object(store.bucket, ref.key, b"forged report", {"If-None-Match": "*"})
    assert refused.value.code == "PreconditionFailed"

    # A plain re-put of other bytes, even forging the hash metadata, only adds a newer version on top:
    # the locked original remains, and the store keeps serving it.
    forged = b"forged report, same key"
    raw.put_object(store.bucket, ref.key, io.BytesIO(forged), len(forged), metadata={META_SHA256: ref.sha256})
    assert _read(raw, store.bucket, ref.key) == forged  # what a naive reader would now get ...
    assert _read(raw, store.bucket, ref.key, ref.version_id) == DATA  # ... the original is intact
    assert store.get(ref.key) == DATA
    assert store.stat(ref.key).version_id == ref.version_id
    assert store.put(DATA) == ref


def test_squatted_key_is_corrupt_not_overwritten(store: S3ObjectStore, raw: Minio) -> None:
    """Other bytes stored first under a content key: reads say corrupt, the store does not overwrite."""
    key = content_key(DATA + b"!")
    raw.put_object(store.bucket, key, io.BytesIO(b"squatter"), 8)
    with pytest.raises(ObjectCorruptError):
        store.get(key)
    with pytest.raises(ObjectExistsError):
        store.put(DATA + b"!")
    assert _read(raw, store.bucket, key) == b"squatter"


def test_legal_hold_and_deletion_once_free(store: S3ObjectStore, raw: Minio) -> None:
    ref = store.put(b"scratch object", document_class="scratch", legal_hold=True)
    info = store.stat(ref.key)
    assert info.legal_hold
    assert info.retain_until is None
    with pytest.raises(ObjectLockError, match="legal hold"):
        store.delete(ref.key)
    with pytest.raises(S3Error):
        raw.remove_object(store.bucket, ref.key, version_id=ref.version_id)
    store.set_legal_hold(ref.key, False)
    assert not store.stat(ref.key).legal_hold
    store.delete(ref.key)
    assert not store.exists(ref.key)
    assert [o for o in raw.list_objects(store.bucket, prefix=ref.key, include_version=True)] == []

    held = store.put(DATA, document_class="report")
    store.set_legal_hold(held.key, True)
    assert raw.is_object_legal_hold_enabled(store.bucket, held.key, version_id=held.version_id)


def test_existing_bucket_without_object_lock_is_refused(s3_server: S3Server, raw: Minio) -> None:
    bucket = f"lt-nolock-{uuid.uuid4().hex[:8]}"
    raw.make_bucket(bucket)
    with pytest.raises(ObjectStoreConfigError, match="no object lock"):
        open_object_store(s3_server.url(bucket), POLICY)
    with pytest.raises(ObjectStoreConfigError, match="does not exist"):
        open_object_store(s3_server.url(f"lt-missing-{uuid.uuid4().hex[:8]}") + "&create_bucket=false", POLICY)


def test_existing_locked_bucket_is_reused(store: S3ObjectStore, s3_server: S3Server) -> None:
    ref = store.put(DATA)
    again = open_object_store(s3_server.url(store.bucket), POLICY)
    assert again.get(ref.key) == DATA


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3:///bucket", "needs a host"),
        ("s3://a:b@host:9000/", "exactly one bucket"),
        ("s3://a:b@host:9000/b/c", "exactly one bucket"),
        ("s3://a:b@host:9000/bucket?secure=maybe", "true or false"),
        ("s3://a:b@host:9000/bucket?tls=1", "unknown S3 URL option"),
        ("s3://a:b@host:99999/bucket", "port"),
    ],
)
def test_bad_s3_urls(url: str, message: str) -> None:
    with pytest.raises(ObjectStoreConfigError, match=message):
        open_object_store(url)


def test_url_credentials_are_percent_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    captured: dict[str, object] = {}

    def fake_init(self: S3ObjectStore, client: Minio, bucket: str, retention: RetentionPolicy, **kw: object) -> None:
        captured.update(client=client, bucket=bucket)

    monkeypatch.setattr(S3ObjectStore, "__init__", fake_init)
    open_object_store("s3://AK%2F1:s%2Bc%40ret@example.org/archive?region=ap-southeast-1")
    client = captured["client"]
    assert isinstance(client, Minio)
    creds = client._provider.retrieve() if client._provider else None
    assert creds is not None
    assert (creds.access_key, creds.secret_key) == ("AK/1", "s+c@ret")
    assert captured["bucket"] == "archive"
