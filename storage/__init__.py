"""Database, object store and archive index. ``storage`` knows bytes and rows, not edXML semantics."""

# Archive index (chỉ mục lưu trữ) and BagIt export.
from storage.archive import ArchiveEntry, ArchiveIndex, ArchivePage, ArchiveQuery, ArchiveRecord
from storage.auditlog import AuditEntry, AuditLog, LogVerification, StoredCheckpoint, verify_log

# Object store (write-once, content-addressed).
# Audit log (nhật ký kiểm toán): RFC 9162 Merkle tree, C2SP checkpoints and witness cosignatures.
from storage.bagit import AUDIT_DIR, BagFile, verify_bag, write_bag
from storage.canonical import canonical_json, event_leaf
from storage.checkpoint import Checkpoint, NoteSigner, NoteVerifier, generate_log_key, generate_witness_key
from storage.errors import (
    ArchiveEntryNotFoundError,
    ArchiveQueryError,
    ArchiveRecordError,
    AuditLogError,
    BagError,
    CanonicalJSONError,
    CheckpointError,
    InvalidObjectKeyError,
    MerkleProofError,
    ObjectCorruptError,
    ObjectExistsError,
    ObjectLockError,
    ObjectNotFoundError,
    ObjectStoreConfigError,
    StorageError,
    WitnessRefusal,
)
from storage.merkle import verify_consistency, verify_inclusion
from storage.objects import ObjectInfo, ObjectPut, ObjectRef, ObjectStore, content_key, open_object_store, put_all
from storage.retention import DEFAULT_RETENTION, RetentionPolicy
from storage.witness import Witness

__all__ = [
    "AUDIT_DIR",
    "DEFAULT_RETENTION",
    "ArchiveEntry",
    "ArchiveEntryNotFoundError",
    "ArchiveIndex",
    "ArchivePage",
    "ArchiveQuery",
    "ArchiveQueryError",
    "ArchiveRecord",
    "ArchiveRecordError",
    "AuditEntry",
    "AuditLog",
    "AuditLogError",
    "BagError",
    "BagFile",
    "CanonicalJSONError",
    "Checkpoint",
    "CheckpointError",
    "InvalidObjectKeyError",
    "LogVerification",
    "MerkleProofError",
    "NoteSigner",
    "NoteVerifier",
    "ObjectCorruptError",
    "ObjectExistsError",
    "ObjectInfo",
    "ObjectLockError",
    "ObjectNotFoundError",
    "ObjectPut",
    "ObjectRef",
    "ObjectStore",
    "ObjectStoreConfigError",
    "RetentionPolicy",
    "StorageError",
    "StoredCheckpoint",
    "Witness",
    "WitnessRefusal",
    "canonical_json",
    "content_key",
    "event_leaf",
    "generate_log_key",
    "generate_witness_key",
    "open_object_store",
    "put_all",
    "verify_bag",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
    "write_bag",
]
