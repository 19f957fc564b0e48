"""Errors raised by the ``node`` package."""


class NodeError(Exception):
    """Base of every error raised by ``node``."""
