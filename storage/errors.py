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
