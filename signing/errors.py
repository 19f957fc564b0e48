"""Errors raised by the ``signing`` package."""


class SigningError(Exception):
    """Base of every error raised by ``signing``."""
