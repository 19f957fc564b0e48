"""Errors raised by the ``signing`` package."""

from __future__ import annotations


class SigningError(Exception):
    """Base of every error raised by ``signing``."""


class KeyLoadError(SigningError):
    """A key or certificate could not be loaded: the message says which file/token and why (never the secret)."""


class PassphraseError(KeyLoadError):
    """A passphrase or PIN was missing or wrong."""


class SignError(SigningError):
    """Producing a signature failed (token removed, key unusable, document not signable)."""


class TimestampError(SignError):
    """The timestamp authority failed (down, an error page, an unreadable reply): not the document's fault, so
    a caller can tell it apart from a file that cannot be signed (a 503 to retry later, not a 422)."""


class DevPkiError(SigningError):
    """The development PKI could not be created or served."""
