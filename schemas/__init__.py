"""edXML messages (QCVN 102:2016/BTTTT): model, builder, parser, XSDs, organisation codes, attachments.

``schemas`` is the bottom layer of Liên thông: it knows XML, not keys, storage or HTTP.

    >>> from schemas import build_message, parse_message, ParseMode
    >>> parsed = parse_message(build_message(message))           # strict: our own form, XSD-validated
    >>> parsed = parse_message(raw, mode=ParseMode.TOLERANT)     # real traffic; see parsed.warnings
"""

from schemas._private.builder import build_message
from schemas._private.parser import (
    ParsedMessage,
    ParseLimits,
    ParseMode,
    ParseWarning,
    SignatureBlock,
    parse_message,
    schema_path,
)
from schemas.attachments import (
    AttachmentLimits,
    content_type_problem,
    decode_attachment,
    encode_attachment,
    guess_content_type,
    sanitize_attachment_name,
)
from schemas.document_id import (
    ConventionalDocumentId,
    DocumentIdForm,
    document_id_form,
    make_document_id,
    new_uuid_document_id,
    parse_conventional,
)
from schemas.errors import (
    AttachmentError,
    DocumentIdError,
    EdxmlError,
    InvalidEdxmlError,
    Location,
    OrganCodeError,
    SchemasError,
    UnreadableXmlError,
    UnsafeXmlError,
)
from schemas.model import (
    NAMESPACE,
    Attachment,
    Business,
    BusinessDocType,
    BusinessDocumentInfo,
    Code,
    DocumentHeader,
    DocumentMessage,
    DocumentType,
    Message,
    Organization,
    OtherInfo,
    Priority,
    PromulgationInfo,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusCode,
    StatusHeader,
    StatusMessage,
    TraceHeader,
    UpdateReceiver,
)
from schemas.orgcode import CodeForm, OrganCode, OrganEntry, OrganRegistry, Sector, is_valid_organ_code

__all__ = [
    "NAMESPACE", "Attachment", "AttachmentError", "AttachmentLimits", "Business", "BusinessDocType",
    "BusinessDocumentInfo", "Code", "CodeForm", "ConventionalDocumentId", "DocumentHeader", "DocumentIdError",
    "DocumentIdForm", "DocumentMessage", "DocumentType", "EdxmlError", "InvalidEdxmlError", "Location",
    "Message", "OrganCode", "OrganCodeError", "OrganEntry", "OrganRegistry", "Organization", "OtherInfo",
    "ParseLimits", "ParseMode", "ParseWarning", "ParsedMessage", "Priority", "PromulgationInfo",
    "ReplacementInfo", "ResponseFor", "SchemasError", "Sector", "SignatureBlock", "SignerInfo", "StaffInfo",
    "StatusCode", "StatusHeader", "StatusMessage", "TraceHeader", "UnreadableXmlError", "UnsafeXmlError",
    "UpdateReceiver", "build_message", "content_type_problem", "decode_attachment", "document_id_form",
    "encode_attachment", "guess_content_type", "is_valid_organ_code", "make_document_id",
    "new_uuid_document_id", "parse_conventional", "parse_message", "sanitize_attachment_name", "schema_path",
]
