"""Errors raised by the ``adapters`` package."""


class AdaptersError(Exception):
    """Base of every error raised by ``adapters``."""
