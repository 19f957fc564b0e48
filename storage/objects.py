"""Write-once, content-addressed object store (kho đối tượng ghi một lần, định địa chỉ theo nội dung).

Every object is stored under ``sha256/<hex of its bytes>``: storing the same bytes twice is a no-op that
returns the existing reference, and a key can never come to hold other bytes. Reads re-hash the bytes,
so corruption or tampering surfaces as :class:`~storage.errors.ObjectCorruptError` instead of wrong data.

Two backends, chosen by URL in :func:`open_object_store`: local files (default, ``file:///abs/path`` or a
plain path) and S3 with object lock (``s3://ACCESS:SECRET@host:port/bucket?secure=false&region=...``).
See ``docs/object-store.md`` for what write-once means on each.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from storage.errors import InvalidObjectKeyError
from storage.retention import DEFAULT_RETENTION, RetentionPolicy

KEY_PREFIX = "sha256/"
_KEY = re.compile(r"sha256/([0-9a-f]{64})")


@dataclass(frozen=True)
class ObjectRef:
    """What a caller keeps to find an object again. ``version_id`` is the S3 version holding the bytes
    (``None`` on the local backend); the key alone is enough to read it back."""

    key: str
    sha256: str
    size: int
    version_id: str | None = None


@dataclass(frozen=True)
class ObjectInfo:
    """Metadata of a stored object. ``retain_until`` is ``None`` when no retention lock applies."""

    key: str
    sha256: str
    size: int
    content_type: str
    document_class: str | None
    retain_until: datetime | None
    legal_hold: bool
    version_id: str | None = None

    def locked_at(self, now: datetime) -> bool:
        """Whether deletion is refused at *now* (retention running or legal hold on)."""
        return self.legal_hold or (self.retain_until is not None and self.retain_until > now)


@runtime_checkable
class ObjectStore(Protocol):
    """The operations both backends offer. Deletion is refused while an object is locked."""

    def put(
        self,
        data: bytes,
        *,
        document_class: str | None = None,
        content_type: str = "application/octet-stream",
        legal_hold: bool = False,
    ) -> ObjectRef:
        """Store *data* once under its content address; the same bytes again return the existing ref."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes under *key*, re-hashed: ObjectCorruptError if they no longer match it."""
        ...

    def exists(self, key: str) -> bool: ...

    def stat(self, key: str) -> ObjectInfo: ...

    def set_legal_hold(self, key: str, on: bool) -> None:
        """Put or lift a legal hold (phong tỏa pháp lý): while on, the object cannot be deleted."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; ObjectLockError while its retention or legal hold is active."""
        ...


@dataclass(frozen=True)
class ObjectPut:
    """One object to store with :func:`put_all`: the arguments of :meth:`ObjectStore.put`."""

    data: bytes
    document_class: str | None = None
    content_type: str = "application/octet-stream"


# Storing mostly waits: on fsync (local files) or on the network (S3). A few threads let the objects of one
# message wait together, not one after the other; both backends are safe to call from several threads.
_PUTTERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="object-put")


def put_all(store: ObjectStore, puts: Sequence[ObjectPut]) -> list[ObjectRef]:
    """Store each object of ``puts`` (concurrently), their refs in the same order; when this returns, all are
    stored as ``put`` stores them. If one fails, its error is raised once the others have finished."""

    def one(put: ObjectPut) -> ObjectRef:
        return store.put(put.data, document_class=put.document_class, content_type=put.content_type)

    if len(puts) < 2:
        return [one(p) for p in puts]
    futures = [_PUTTERS.submit(one, p) for p in puts]
    errors = [f.exception() for f in futures]  # waits for every one: none is left running behind our back
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]


def content_key(data: bytes) -> str:
    """The content address of *data*: ``sha256/<64 lowercase hex>``."""
    return KEY_PREFIX + hashlib.sha256(data).hexdigest()


def key_digest(key: str) -> str:
    """The hex digest inside *key*; InvalidObjectKeyError for anything but a well-formed content address.
    Checked before any path or URL is built from it, so a key can never escape the store's directory."""
    match = _KEY.fullmatch(key) if isinstance(key, str) else None
    if match is None:
        raise InvalidObjectKeyError(f"not an object key (expected sha256/<64 lowercase hex>): {key!r}")
    return match.group(1)


def open_object_store(url: str, retention: RetentionPolicy = DEFAULT_RETENTION) -> ObjectStore:
    """Open the store named by *url*: ``file:///abs/path`` or a plain path for local files,
    ``s3://ACCESS:SECRET@host:port/bucket?secure=false&region=us-east-1`` for S3 with object lock."""
    # Imported here so that the local default does not load the S3 client and vice versa.
    if url.startswith("s3://"):
        from storage._private.s3_objects import open_s3_store

        return open_s3_store(url, retention)
    from storage._private.local_objects import open_local_store

    return open_local_store(url, retention)
