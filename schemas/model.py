"""The edXML message model (QCVN 102:2016/BTTTT, amended 2022).

Two messages travel over the axis: a :class:`DocumentMessage` (văn bản, with its attachments) and a
:class:`StatusMessage` (thông báo trạng thái). Models are immutable and canonical: text is
NFC-normalised and timestamps are Vietnam time to the second when a model is made, so a model always
equals what parsing its own bytes gives back.

Field names are English; each docstring names the edXML element it stands for.
"""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from enum import IntEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas._private.dates import to_vietnam_time
from schemas._private.text import first_non_xml_char, normalize_text
from schemas.errors import AttachmentError, OrganCodeError
from schemas.orgcode import OrganCode

NAMESPACE = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
"""The edXML namespace; the root element's default namespace and the ``edXML`` prefix."""


def _organ_id(value: str) -> str:
    try:
        return OrganCode.parse(value).value
    except OrganCodeError as e:
        raise ValueError(str(e)) from None


def _document_id(value: str) -> str:
    if not value or value != value.strip() or any(c in value for c in "\r\n\t"):
        raise ValueError("DocumentId must be non-empty, on one line, without surrounding spaces")
    if (bad := first_non_xml_char(value)) is not None:
        raise ValueError(f"DocumentId contains U+{ord(value[bad]):04X}, which XML cannot carry")
    if len(value) > 256:
        raise ValueError(f"DocumentId is {len(value)} characters; at most 256")
    return value


def _attachment_name(value: str) -> str:
    from schemas.attachments import sanitize_attachment_name

    try:
        safe = sanitize_attachment_name(value)
    except AttachmentError as e:  # not a ValueError: pydantic would let it escape unwrapped
        raise ValueError(f"attachment name {value!r} is unusable: {e.message}") from None
    if safe != value:
        raise ValueError(f"attachment name {value!r} is unsafe (paths, control characters); use {safe!r}")
    return value


def _content_id(value: str) -> str:
    bare = value
    while bare.startswith("cid:"):  # every prefix: the builder adds one back, the parser removes one
        bare = bare.removeprefix("cid:")
    if not bare or any(c.isspace() or c in "<>\"'" for c in bare):
        raise ValueError(f"content id {value!r} must be a non-empty token without spaces, quotes or <>")
    if (bad := first_non_xml_char(bare)) is not None:
        raise ValueError(f"content id contains U+{ord(bare[bad]):04X}, which XML cannot carry")
    return bare


def _timestamp(value: datetime) -> datetime:
    try:
        return to_vietnam_time(value)
    except OverflowError:
        raise ValueError(f"timestamp {value.isoformat()} is out of range in Vietnam time") from None


Text = Annotated[str, AfterValidator(normalize_text)]
"""Free text: NFC-normalised, XML-safe characters only."""
OrganId = Annotated[str, AfterValidator(_organ_id)]
"""An organisation code (mã định danh), see :mod:`schemas.orgcode`."""
DocumentId = Annotated[str, AfterValidator(_document_id)]
Timestamp = Annotated[datetime, AfterValidator(_timestamp)]
"""An instant, kept in Vietnam time to the second (edXML carries no zone); naive input means ICT."""
AttachmentName = Annotated[str, AfterValidator(normalize_text), AfterValidator(_attachment_name)]
ContentId = Annotated[str, AfterValidator(_content_id)]
"""Attachment content id without the ``cid:`` prefix (the builder adds it where edXML wants it)."""


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        validate_default=True,
        ser_json_bytes="base64",
        val_json_bytes="base64",  # attachments travel in JSON APIs as base64
    )


class BusinessDocType(IntEnum):
    """BussinessDocType: what a document message does."""

    NEW = 0  # văn bản mới
    REVOCATION = 1  # thu hồi
    UPDATE = 2  # cập nhật
    REPLACEMENT = 3  # thay thế


class StatusCode(IntEnum):
    """StatusCode of a status message. Written with two digits (``01``)."""

    ARRIVED = 1  # 01 đã đến (chưa xử lý)
    REFUSED = 2  # 02 từ chối tiếp nhận
    REGISTERED = 3  # 03 đã tiếp nhận (vào sổ)
    ASSIGNED = 4  # 04 phân công
    IN_PROGRESS = 5  # 05 đang xử lý
    DONE = 6  # 06 hoàn thành
    RECALL_REQUESTED = 13  # 13 lấy lại (bên gửi đề nghị lấy lại/cập nhật)
    RECALL_AGREED = 15  # 15 đồng ý cập nhật/lấy lại
    RECALL_REFUSED = 16  # 16 từ chối cập nhật/lấy lại

    @property
    def code(self) -> str:
        return f"{self.value:02d}"


class Priority(IntEnum):
    """OtherInfo/Priority (độ khẩn)."""

    NORMAL = 0  # thường
    URGENT = 1  # khẩn
    VERY_URGENT = 2  # thượng khẩn
    FLASH = 3  # hỏa tốc
    FLASH_SCHEDULED = 4  # hỏa tốc hẹn giờ


class Organization(_Model):
    """From / To: an agency with its contact details (OrganId … Website)."""

    organ_id: OrganId
    organ_name: Text = Field(min_length=1)
    organization_in_charge: Text = ""
    organ_add: Text = ""
    email: Text = ""
    telephone: Text = ""
    fax: Text = ""
    website: Text = ""


class Code(_Model):
    """Code: số (CodeNumber) and ký hiệu (CodeNotation) of the document, e.g. 123 / BC-UBND."""

    code_number: Text = Field(min_length=1)
    code_notation: Text = ""


class PromulgationInfo(_Model):
    """PromulgationInfo: place (địa danh) and date of promulgation (ngày ban hành)."""

    place: Text = ""
    promulgation_date: date


class DocumentType(_Model):
    """DocumentType: Type (1 administrative, 2 legal normative), TypeDetail (kind id), TypeName (e.g. Báo cáo)."""

    type: int = Field(default=1, ge=0, le=99)
    type_detail: int = Field(default=0, ge=0, le=9999)
    type_name: Text = ""


class SignerInfo(_Model):
    """SignerInfo: Competence (thẩm quyền, e.g. TM.), Position (chức vụ), FullName (họ tên)."""

    competence: Text = ""
    position: Text = ""
    full_name: Text = ""


class OtherInfo(_Model):
    """OtherInfo: priority, sphere of promulgation, typist, copies, pages, direction, appendixes."""

    priority: Priority = Priority.NORMAL
    sphere_of_promulgation: Text = ""
    typer_notation: Text = ""
    promulgation_amount: int = Field(default=0, ge=0, le=1_000_000)
    page_amount: int = Field(default=0, ge=0, le=1_000_000)
    direction: bool = False
    appendixes: tuple[Text, ...] = ()


class ResponseFor(_Model):
    """ResponseFor: the document a message answers (OrganId, Code, PromulgationDate, DocumentId)."""

    organ_id: OrganId
    code: Text = ""
    promulgation_date: date | None = None
    document_id: DocumentId


class StaffInfo(_Model):
    """StaffInfo: the clerk handling the message (Department, Staff, Email, Mobile)."""

    department: Text = ""
    staff: Text = ""
    email: Text = ""
    mobile: Text = ""


class TraceHeader(_Model):
    """TraceHeader: one hop of the route (OrganId, Timestamp); appended by every node, not signed."""

    organ_id: OrganId
    timestamp: Timestamp


class UpdateReceiver(_Model):
    """ReceiverList/Receiver of an update: a receiver and what the update does to it."""

    organ_id: OrganId
    receiver_type: int = Field(default=1, ge=0, le=99)


class BusinessDocumentInfo(_Model):
    """BussinessDocumentInfo of an update (BussinessDocType 2): what changes."""

    document_info_changed: bool = False  # DocumentInfo
    receivers_changed: bool = False  # DocumentReceiver
    receivers: tuple[UpdateReceiver, ...] = ()  # ReceiverList


class ReplacementInfo(_Model):
    """ReplacementInfoList/ReplacementInfo of a replacement (BussinessDocType 3)."""

    document_id: DocumentId
    organ_ids: tuple[OrganId, ...] = Field(min_length=1)


class Business(_Model):
    """Bussiness (spelled so in edXML): what this document message does to the document."""

    document_id: DocumentId
    doc_type: BusinessDocType = BusinessDocType.NEW
    reason: Text = ""
    paper: bool = False
    staff_info: StaffInfo = StaffInfo()
    document_info: BusinessDocumentInfo | None = None
    replacements: tuple[ReplacementInfo, ...] = ()

    @model_validator(mode="after")
    def _variant_parts(self) -> Business:
        if self.doc_type is BusinessDocType.UPDATE and self.document_info is None:
            raise ValueError("an update (BussinessDocType 2) needs document_info (BussinessDocumentInfo)")
        if self.doc_type is not BusinessDocType.UPDATE and self.document_info is not None:
            raise ValueError("document_info (BussinessDocumentInfo) belongs to updates (BussinessDocType 2) only")
        if self.doc_type is BusinessDocType.REPLACEMENT and not self.replacements:
            raise ValueError("a replacement (BussinessDocType 3) needs replacements (ReplacementInfoList)")
        if self.doc_type is not BusinessDocType.REPLACEMENT and self.replacements:
            raise ValueError("replacements (ReplacementInfoList) belong to replacements (BussinessDocType 3) only")
        if (
            self.doc_type in (BusinessDocType.REVOCATION, BusinessDocType.UPDATE, BusinessDocType.REPLACEMENT)
            and not self.reason
        ):
            raise ValueError(f"a {self.doc_type.name.lower()} needs a reason (BussinessDocReason)")
        return self


class Attachment(_Model):
    """An attached file: the manifest Reference and the AttachmentEncoded/Attachment in one.

    ``data`` is the file itself; on the wire it is a ZIP holding the file, base64-encoded.
    """

    content_id: ContentId
    name: AttachmentName = Field(min_length=1)
    content_type: Text = Field(min_length=1)
    description: Text = ""
    data: bytes = Field(repr=False)

    @field_validator("content_type")
    @classmethod
    def _mime(cls, value: str) -> str:
        main, _, sub = value.partition("/")
        if not main or not sub or any(c.isspace() for c in value):
            raise ValueError(f"content type {value!r} is not a MIME type like application/pdf")
        return value.lower()


class DocumentHeader(_Model):
    """MessageHeader of a document message."""

    from_: Organization = Field(alias="from")
    to: tuple[Organization, ...] = Field(min_length=1)
    document_id: DocumentId
    code: Code
    promulgation_info: PromulgationInfo
    document_type: DocumentType = DocumentType()
    subject: Text = Field(min_length=1)  # trích yếu
    content: Text = ""
    signer_info: SignerInfo = SignerInfo()
    due_date: date | None = None
    other_info: OtherInfo = OtherInfo()
    response_for: tuple[ResponseFor, ...] = ()
    steering_type: int = Field(default=0, ge=0, le=99)
    to_places: tuple[Text, ...] = ()  # nơi nhận, free text

    @model_validator(mode="after")
    def _distinct_recipients(self) -> DocumentHeader:
        ids = [o.organ_id for o in self.to]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"recipient listed twice in To: {', '.join(dupes)}")
        return self


class DocumentMessage(_Model):
    """A document message (gói tin văn bản): header, route, business block and attachments."""

    kind: Literal["document"] = "document"
    header: DocumentHeader
    business: Business
    trace: tuple[TraceHeader, ...] = ()
    attachments: tuple[Attachment, ...] = ()

    @model_validator(mode="after")
    def _unique_attachments(self) -> DocumentMessage:
        for attr in ("content_id", "name"):
            values = [getattr(a, attr) for a in self.attachments]
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"two attachments share the {attr.replace('_', ' ')} {dupes[0]!r}")
        return self


class StatusHeader(_Model):
    """MessageHeader of a status message: From, ResponseFor, StaffInfo, StatusCode, Description, Timestamp."""

    from_: Organization = Field(alias="from")
    response_for: ResponseFor
    staff_info: StaffInfo = StaffInfo()
    status_code: StatusCode
    description: Text = ""
    timestamp: Timestamp


class StatusMessage(_Model):
    """A status message (thông báo trạng thái xử lý văn bản); it has no body."""

    kind: Literal["status"] = "status"
    header: StatusHeader
    trace: tuple[TraceHeader, ...] = ()


Message = DocumentMessage | StatusMessage


def nfc(value: str) -> str:
    """NFC form of ``value`` (the form every model text is kept in)."""
    return unicodedata.normalize("NFC", value)
