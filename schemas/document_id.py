"""DocumentId helpers.

The conventional form is ``<sender OrganId>,<yyyy/MM/dd>,<CodeNumber>/<CodeNotation>``, e.g.
``000.00.00.H41,2026/11/20,123/BC-UBND``; real traffic also carries UUIDs.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date
from enum import Enum

from schemas._private.dates import format_date
from schemas.errors import DocumentIdError, OrganCodeError
from schemas.orgcode import OrganCode

MAX_LENGTH = 256
# re.ASCII: \d is 0-9 only; int() would otherwise read Arabic-Indic or full-width digits as a date.
_CONVENTIONAL = re.compile(r"([^,]+),(\d{4})/(\d{2})/(\d{2}),([^/,]+)/([^,]+)", re.ASCII)


class DocumentIdForm(Enum):
    CONVENTIONAL = "conventional"
    UUID = "uuid"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ConventionalDocumentId:
    """The parts of a conventional DocumentId."""

    organ_id: OrganCode
    promulgation_date: date
    code_number: str
    code_notation: str

    def __str__(self) -> str:
        return f"{self.organ_id},{format_date(self.promulgation_date)},{self.code_number}/{self.code_notation}"


def make_document_id(organ_id: str, promulgation_date: date, code_number: str, code_notation: str) -> str:
    """Build the conventional DocumentId, validating each part."""
    for name, part in (("code number", code_number), ("code notation", code_notation)):
        if not part or "," in part or part != part.strip() or any(c.isspace() and c != " " for c in part):
            raise DocumentIdError(
                f"{name} {part!r} cannot be used in a DocumentId (empty, comma, surrounding or control spaces)"
            )
    if "/" in code_number:
        raise DocumentIdError(f"code number {code_number!r} must not contain '/'")
    try:
        code = OrganCode.parse(organ_id)
    except OrganCodeError as e:
        raise DocumentIdError(f"DocumentId sender: {e}") from e
    value = str(ConventionalDocumentId(code, promulgation_date, code_number, code_notation))
    if len(value) > MAX_LENGTH:
        raise DocumentIdError(f"DocumentId would be {len(value)} characters; at most {MAX_LENGTH}")
    return value


def new_uuid_document_id() -> str:
    return str(uuid.uuid4())


def parse_conventional(text: str) -> ConventionalDocumentId:
    """Split a conventional DocumentId; raises :class:`DocumentIdError` naming the part that is wrong."""
    m = _CONVENTIONAL.fullmatch(text)
    if not m:
        raise DocumentIdError(f"DocumentId {text!r} is not <OrganId>,<yyyy/MM/dd>,<number>/<notation>")
    try:
        organ = OrganCode.parse(m[1])
    except OrganCodeError as e:
        raise DocumentIdError(f"DocumentId {text!r}: {e}") from e
    try:
        day = date(int(m[2]), int(m[3]), int(m[4]))
    except ValueError as e:
        raise DocumentIdError(f"DocumentId {text!r}: bad date: {e}") from e
    return ConventionalDocumentId(organ, day, m[5], m[6])


def document_id_form(text: str) -> DocumentIdForm:
    try:
        parse_conventional(text)
        return DocumentIdForm.CONVENTIONAL
    except DocumentIdError:
        pass
    try:
        uuid.UUID(text)
    except ValueError:
        return DocumentIdForm.OTHER
    # uuid.UUID accepts braces and urn: prefixes; only the canonical hyphenated form counts.
    return DocumentIdForm.UUID if len(text) == 36 and text.count("-") == 4 else DocumentIdForm.OTHER
