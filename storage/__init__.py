"""Database, object store and archive index. ``storage`` knows bytes and rows, not edXML semantics."""

# Object store (write-once, content-addressed).
from storage.errors import (
    InvalidObjectKeyError,
    ObjectCorruptError,
    ObjectExistsError,
    ObjectLockError,
    ObjectNotFoundError,
    ObjectStoreConfigError,
    StorageError,
)
from storage.objects import ObjectInfo, ObjectRef, ObjectStore, content_key, open_object_store
from storage.retention import DEFAULT_RETENTION, RetentionPolicy

__all__ = [
    "DEFAULT_RETENTION",
    "InvalidObjectKeyError",
    "ObjectCorruptError",
    "ObjectExistsError",
    "ObjectInfo",
    "ObjectLockError",
    "ObjectNotFoundError",
    "ObjectRef",
    "ObjectStore",
    "ObjectStoreConfigError",
    "RetentionPolicy",
    "StorageError",
    "content_key",
    "open_object_store",
]
