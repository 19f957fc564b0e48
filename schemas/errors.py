"""Errors raised by the ``schemas`` package.

Every error that concerns a place in a document carries a :class:`Location` so that a clerk or an
integrator can find the offending element: ``line 12, /edXML/edXMLEnvelope/.../OrganId``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """Where in a document something was found: source line (when known) and element path."""

    line: int | None
    path: str

    def __str__(self) -> str:
        where = self.path or "(document)"
        return f"line {self.line}, {where}" if self.line is not None else where


class SchemasError(Exception):
    """Base of every error raised by ``schemas``."""


class OrganCodeError(SchemasError, ValueError):
    """An organisation code (mã định danh) is not in a recognised form."""


class DocumentIdError(SchemasError, ValueError):
    """A DocumentId is not in the conventional ``<OrganId>,<yyyy/MM/dd>,<number>/<notation>`` form or a UUID."""


class EdxmlError(SchemasError):
    """Base of errors about an edXML document; ``location`` says where, when known."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class UnreadableXmlError(EdxmlError):
    """The bytes are not well-formed XML (or not XML at all); nothing could be read."""


class UnsafeXmlError(UnreadableXmlError):
    """The document was refused before being read: a DTD, an entity, or a size/depth/count limit.

    Refusals happen while parsing, so an attack never costs more than the configured limits.
    """


class InvalidEdxmlError(EdxmlError):
    """Well-formed XML that is not a valid edXML message; ``problems`` lists each finding with its place."""

    def __init__(
        self, message: str, location: Location | None = None, problems: tuple[tuple[Location | None, str], ...] = ()
    ) -> None:
        super().__init__(message, location)
        self.problems = problems or ((location, message),)


class AttachmentError(InvalidEdxmlError):
    """An attachment cannot be decoded: bad base64, bad ZIP, too large, unsafe name, wrong content type."""
