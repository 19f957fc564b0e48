"""Errors raised by the ``storage`` package."""


class StorageError(Exception):
    """Base of every error raised by ``storage``."""
