"""Errors raised by the ``storage`` package."""


class StorageError(Exception):
    """Base of every error raised by ``storage``."""


# Object store (kho đối tượng ghi một lần).


class ObjectStoreConfigError(StorageError, ValueError):
    """An object store URL, bucket or retention setting is unusable (cấu hình kho đối tượng không hợp lệ)."""


class InvalidObjectKeyError(StorageError, ValueError):
    """A key is not a content address of the form ``sha256/<64 lowercase hex>``."""


class ObjectNotFoundError(StorageError, KeyError):
    """No object is stored under the key (không tìm thấy đối tượng)."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class ObjectExistsError(StorageError):
    """The key already holds other bytes; write-once storage never replaces them (không ghi đè)."""


class ObjectCorruptError(StorageError):
    """The stored bytes no longer hash to their key (dữ liệu lưu trữ bị hỏng hoặc bị sửa)."""


class ObjectLockError(StorageError):
    """Deleting or changing an object is refused while its retention or legal hold is active (đang bị khóa lưu giữ)."""


# Audit log (nhật ký kiểm toán): Merkle proofs, checkpoints, witnesses.


class MerkleProofError(StorageError, ValueError):
    """A Merkle inclusion or consistency proof does not verify (bằng chứng Merkle không hợp lệ); says why."""


class CanonicalJSONError(StorageError, ValueError):
    """A value cannot be written as RFC 8785 canonical JSON for the audit log (not JSON, or a fractional number)."""


class CheckpointError(StorageError, ValueError):
    """A signed note, key or checkpoint is malformed, unsigned by a known key, or its signature fails."""


class AuditLogError(StorageError):
    """The audit log cannot do what was asked (an index or size beyond the log, a checkpoint that is not ours)."""


class WitnessRefusal(StorageError):  # noqa: N818 - a decision the caller expects, named as the auditors say it
    """The witness refuses to cosign (từ chối đồng ký): bad log signature, rollback, or a fork of the log."""


# Archive index (chỉ mục lưu trữ) and BagIt export.


class ArchiveQueryError(StorageError, ValueError):
    """An archive search cannot run as asked (truy vấn không hợp lệ): bad period, limit, dates, text or cursor."""


class ArchiveRecordError(StorageError, ValueError):
    """An entry cannot be archived as given: an unknown direction or kind, a malformed period, an empty field."""


class ArchiveEntryNotFoundError(StorageError, KeyError):
    """No archive entry has this id (không tìm thấy bản lưu)."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class BagError(StorageError, ValueError):
    """A BagIt package cannot be written as asked: an unsafe or duplicate payload path, bad bag-info (gói BagIt)."""
