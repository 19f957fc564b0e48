"""Errors raised by the ``node`` package."""


class NodeError(Exception):
    """Base of every error raised by ``node``."""


class ConfigError(NodeError):
    """The configuration file or environment is invalid; the message names the field."""


class SendError(NodeError):
    """A message could not be prepared for sending (bad description, missing file, unknown organisation)."""


class NotFoundError(NodeError):
    """The message, document or delivery asked for does not exist on this node."""


class AmbiguousDocumentError(SendError):
    """Two senders used the same DocumentId for documents this organisation received: name the sender."""
