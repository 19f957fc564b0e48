"""Hypothesis strategies for random, valid edXML messages (documents of the 4 business types, all 9 statuses).

Every strategy returns *validated* model objects. Inputs are deliberately awkward: Vietnamese text in NFC
and in NFD, XML-special characters, CR/LF/TAB, surrounding spaces, emoji; organisation codes in both the
QCVN 102 and the QĐ 20/2020 form; conventional, UUID and other DocumentIds; aware datetimes in many
zones and naive ones, with microseconds. The model canonicalises all of that when it is built.
"""

from __future__ import annotations

import unicodedata
import zoneinfo
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

from hypothesis import strategies as st

from schemas import (
    Attachment,
    AttachmentError,
    Business,
    BusinessDocType,
    BusinessDocumentInfo,
    Code,
    DocumentHeader,
    DocumentMessage,
    DocumentType,
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
    make_document_id,
    sanitize_attachment_name,
)

# --- text ------------------------------------------------------------------------------------------

VIETNAMESE_PHRASES = (
    "Ủy ban nhân dân tỉnh Nghệ An",
    "Sở Tài chính",
    "Bộ Tài nguyên và Môi trường",
    "Văn phòng Chính phủ",
    "Báo cáo tình hình thực hiện dự toán ngân sách nhà nước",
    "Quyết định về việc phê duyệt",
    "Công văn hỏa tốc",
    "thượng khẩn",
    "Thừa Thiên Huế",
    "Đắk Lắk",
    "Bà Rịa – Vũng Tàu",
    "phường Điện Biên, quận Ba Đình",
    "KT. GIÁM ĐỐC",
    "Phó Chủ tịch",
    "Nguyễn Thị Hồng Nhung",
    "Trần Đức Lượng",
    "Lưu: VT, NS",
    "Như trên",
    "số liệu đến ngày 14",
    "quý IV năm 2026",
)
SPECIAL_PIECES = (
    "<",
    ">",
    "&",
    '"',
    "'",
    "&amp;",
    "<![CDATA[x]]>",
    "]]>",
    "\r",
    "\n",
    "\r\n",
    "\t",
    " ",
    "  ",
    "😀",
    "🇻🇳",
)
_VIETNAMESE_LETTERS = "aăâbcdđeêghiklmnoôơpqrstuưvxyàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵĐƯƠ"

# Every character XML 1.0 can carry (no surrogates, no C0 controls but TAB/LF/CR, no U+FFFE/U+FFFF).
_XML_CHARS = st.characters(
    codec="utf-8",
    exclude_characters=[chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"] + ["\ufffe", "\uffff"],
)


def _normal_form(value: str, form: str) -> str:
    return unicodedata.normalize(form, value) if form != "as-is" else value


@st.composite
def texts(draw: st.DrawFn, *, min_size: int = 0, max_pieces: int = 6) -> str:
    """Free text as a clerk might type it, or worse; handed to the model in NFC, NFD or as drawn."""
    piece = st.one_of(
        st.sampled_from(VIETNAMESE_PHRASES),
        st.sampled_from(SPECIAL_PIECES),
        st.text(st.sampled_from(_VIETNAMESE_LETTERS + _VIETNAMESE_LETTERS.upper() + " .,-/()"), max_size=12),
        st.text(_XML_CHARS, max_size=8),
    )
    value = "".join(draw(st.lists(piece, min_size=min_size, max_size=max_pieces)))
    if len(value) < min_size:
        value += draw(st.sampled_from(VIETNAMESE_PHRASES))
    return _normal_form(value, draw(st.sampled_from(("NFC", "NFD", "as-is"))))


def non_empty_texts() -> st.SearchStrategy[str]:
    return texts(min_size=1)


# --- identifiers -----------------------------------------------------------------------------------

WELL_KNOWN_ORGANS = (
    "000.00.00.G22",  # Văn phòng Chính phủ
    "000.00.00.G12",  # Bộ Tài chính
    "000.00.00.H41",  # UBND tỉnh Nghệ An
    "000.01.41.H41",
    "002.00.20.H13",
    "000.00.00.K41",
    "01.02.G22",  # QĐ 20/2020 form
    "G22",
)
_DIGIT = st.sampled_from("0123456789")
_UPPER = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text(_DIGIT, min_size=n, max_size=n)


@st.composite
def qcvn_organ_ids(draw: st.DrawFn) -> str:
    """``V1V2V3.Z1Z2.Y1Y2.MX1X2`` (QCVN 102:2016)."""
    return f"{draw(_digits(3))}.{draw(_digits(2))}.{draw(_digits(2))}.{draw(_UPPER)}{draw(_digits(2))}"


@st.composite
def qd20_organ_ids(draw: st.DrawFn) -> str:
    """QĐ 20/2020/QĐ-TTg: dot-separated ``[0-9A-Z]+`` groups ending with a level-1 group, at most 35 chars."""
    level1 = f"{draw(_UPPER)}{draw(_digits(2))}"
    groups = draw(
        st.lists(st.text(st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"), min_size=1, max_size=4), max_size=4)
    )
    value = ".".join([*groups, level1])
    return value[-35:].lstrip(".") if len(value) > 35 else value


def organ_ids() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(WELL_KNOWN_ORGANS), qcvn_organ_ids(), qd20_organ_ids())


CODE_NOTATIONS = (
    "BC-UBND",
    "BC-STC",
    "QĐ-BTC",
    "CV-VPCP",
    "TTr-SNV",
    "KH-UBND",
    "TB-BTNMT",
    "NQ-HĐND",
    "BC",
    "KH-Sở NN",
)


@st.composite
def code_parts(draw: st.DrawFn) -> tuple[str, str]:
    """(CodeNumber, CodeNotation) usable in a conventional DocumentId."""
    number = draw(st.one_of(st.integers(1, 9999).map(str), st.sampled_from(("01", "245", "1234a"))))
    notation = draw(
        st.one_of(
            st.sampled_from(CODE_NOTATIONS),
            st.sampled_from(CODE_NOTATIONS).map(lambda n: unicodedata.normalize("NFD", n)),
        )
    )
    return number, notation


def dates() -> st.SearchStrategy[date]:
    return st.dates(min_value=date(1990, 1, 1), max_value=date(2099, 12, 31))


@st.composite
def conventional_document_ids(draw: st.DrawFn) -> str:
    number, notation = draw(code_parts())
    return make_document_id(draw(organ_ids()), draw(dates()), number, notation)


@st.composite
def other_document_ids(draw: st.DrawFn) -> str:
    """Anything the model accepts that is neither conventional nor a UUID (and UUIDs in odd spellings)."""
    value = draw(
        st.one_of(
            st.sampled_from(
                (
                    "VB-2026-000123",
                    "{12345678-1234-5678-1234-567812345678}",
                    "urn:uuid:12345678-1234-5678-1234-567812345678",
                    "12345678123456781234567812345678",
                    "Số 123/BC-UBND ngày 16/11/2026",
                    "a<b>&c\"d'e",
                    "😀",
                )
            ),
            st.text(_XML_CHARS, min_size=1, max_size=40),
        )
    )
    value = value.strip()
    for bad in "\r\n\t":
        value = value.replace(bad, "")
    return value.strip() or "VB-0"


def document_ids() -> st.SearchStrategy[str]:
    return st.one_of(
        conventional_document_ids(),
        st.uuids().map(str),
        st.uuids().map(lambda u: str(u).upper()),
        other_document_ids(),
    )


# --- time ------------------------------------------------------------------------------------------

_ZONES = tuple(
    zoneinfo.ZoneInfo(name)
    for name in (
        "Asia/Ho_Chi_Minh",
        "UTC",
        "Asia/Tokyo",
        "Europe/Paris",
        "America/New_York",
        "Pacific/Kiritimati",
        "America/St_Johns",
        "Asia/Kathmandu",
    )
)


def zones() -> st.SearchStrategy[tzinfo | None]:
    fixed = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
    return st.one_of(st.none(), st.sampled_from(_ZONES), fixed, st.just(UTC))


def datetimes() -> st.SearchStrategy[datetime]:
    """Aware (any zone) or naive (meaning Vietnam time) datetimes with microseconds."""
    return st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2099, 12, 31), timezones=zones())


# --- parts -----------------------------------------------------------------------------------------


@st.composite
def organizations(draw: st.DrawFn, organ_id: st.SearchStrategy[str] | None = None) -> Organization:
    optional = texts(max_pieces=3)
    return Organization(
        organ_id=draw(organ_id if organ_id is not None else organ_ids()),
        organ_name=draw(non_empty_texts()),
        organization_in_charge=draw(optional),
        organ_add=draw(optional),
        email=draw(st.one_of(st.just(""), st.emails().map(str), optional)),
        telephone=draw(st.one_of(st.just(""), st.sampled_from(("0238 3844 270", "+84 24 3825 1234")), optional)),
        fax=draw(optional),
        website=draw(st.one_of(st.just(""), st.just("https://chinhphu.vn/?a=1&b=<2>"), optional)),
    )


@st.composite
def staff_infos(draw: st.DrawFn) -> StaffInfo:
    return StaffInfo(
        department=draw(texts(max_pieces=2)),
        staff=draw(texts(max_pieces=2)),
        email=draw(texts(max_pieces=1)),
        mobile=draw(texts(max_pieces=1)),
    )


@st.composite
def response_fors(draw: st.DrawFn) -> ResponseFor:
    return ResponseFor(
        organ_id=draw(organ_ids()),
        code=draw(texts(max_pieces=2)),
        promulgation_date=draw(st.none() | dates()),
        document_id=draw(document_ids()),
    )


def trace_headers() -> st.SearchStrategy[tuple[TraceHeader, ...]]:
    hop = st.builds(TraceHeader, organ_id=organ_ids(), timestamp=datetimes())
    return st.lists(hop, max_size=4).map(tuple)


# Content types with data that looks like them (the parser checks PDF and XML headers).
_CONTENT_TYPES = (
    "application/pdf",
    "Application/PDF",
    "application/xml",
    "text/xml",
    "application/atom+xml",
    "text/plain",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "image/png",
    "application/zip",
    "application/octet-stream",
)
_SAFE_NAME_CHARS = _VIETNAMESE_LETTERS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_()&'+,;=@[]{}~!#$%^😀"


@st.composite
def attachment_names(draw: st.DrawFn) -> str:
    stem = draw(
        st.one_of(
            st.sampled_from(("Báo cáo tháng 10", "Phụ lục 01 & 02", "Quyết định số 123'QĐ", "bao-cao", "Tờ trình 😀")),
            st.text(st.sampled_from(_SAFE_NAME_CHARS), min_size=1, max_size=30),
        )
    )
    name = f"{stem}{draw(st.sampled_from(('.pdf', '.xml', '.docx', '.xlsx', '.txt', '', '.tar.gz')))}"
    name = _normal_form(name, draw(st.sampled_from(("NFC", "NFD"))))
    try:
        safe = sanitize_attachment_name(name)
    except AttachmentError:
        safe = "tep-dinh-kem.pdf"
    return safe if draw(st.booleans()) else _normal_form(safe, "NFD")


@st.composite
def content_ids(draw: st.DrawFn) -> str:
    token = draw(
        st.one_of(
            st.integers(1, 999).map(str),
            st.uuids().map(lambda u: u.hex),
            st.sampled_from(("part1.ABC@lienthong.gov.vn", "bao-cao_2026&x", "Phụ-lục", "😀", "cid:1", "CID:2")),
            st.text(
                st.characters(
                    codec="utf-8",
                    exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
                    exclude_characters="<>\"'\ufffe\uffff\x85\x1c\x1d\x1e\x1f",
                ),
                min_size=1,
                max_size=12,
            ),
        )
    )
    return draw(st.sampled_from(("", "cid:"))) + token


@st.composite
def attachment_data(draw: st.DrawFn, content_type: str) -> bytes:
    payload = draw(st.binary(max_size=200))
    ctype = content_type.lower()
    if ctype == "application/pdf":
        return b"%PDF-1.7\n" + payload + b"\n%%EOF\n"
    if ctype in ("application/xml", "text/xml") or ctype.endswith("+xml"):
        return '<?xml version="1.0" encoding="UTF-8"?><báo-cáo/>'.encode() + payload
    return payload


@st.composite
def attachments(draw: st.DrawFn) -> Attachment:
    content_type = draw(st.sampled_from(_CONTENT_TYPES))
    return Attachment(
        content_id=draw(content_ids()),
        name=draw(attachment_names()),
        content_type=content_type,
        description=draw(texts(max_pieces=3)),
        data=draw(attachment_data(content_type)),
    )


@st.composite
def other_infos(draw: st.DrawFn) -> OtherInfo:
    return OtherInfo(
        priority=draw(st.sampled_from(Priority)),
        sphere_of_promulgation=draw(texts(max_pieces=2)),
        typer_notation=draw(texts(max_pieces=1)),
        promulgation_amount=draw(st.integers(0, 1_000_000)),
        page_amount=draw(st.integers(0, 1_000_000)),
        direction=draw(st.booleans()),
        appendixes=tuple(draw(st.lists(texts(max_pieces=2), max_size=3))),
    )


@st.composite
def businesses(draw: st.DrawFn, document_id: str, doc_type: BusinessDocType | None = None) -> Business:
    doc_type = draw(st.sampled_from(BusinessDocType)) if doc_type is None else doc_type
    needs_reason = doc_type is not BusinessDocType.NEW
    document_info = None
    replacements: tuple[ReplacementInfo, ...] = ()
    if doc_type is BusinessDocType.UPDATE:
        receivers = draw(
            st.lists(st.builds(UpdateReceiver, organ_id=organ_ids(), receiver_type=st.integers(0, 99)), max_size=3)
        )
        document_info = BusinessDocumentInfo(
            document_info_changed=draw(st.booleans()), receivers_changed=draw(st.booleans()), receivers=tuple(receivers)
        )
    if doc_type is BusinessDocType.REPLACEMENT:
        replacement = st.builds(
            ReplacementInfo,
            document_id=document_ids(),
            organ_ids=st.lists(organ_ids(), min_size=1, max_size=3).map(tuple),
        )
        replacements = tuple(draw(st.lists(replacement, min_size=1, max_size=3)))
    return Business(
        document_id=document_id,
        doc_type=doc_type,
        reason=draw(non_empty_texts() if needs_reason else texts(max_pieces=2)),
        paper=draw(st.booleans()),
        staff_info=draw(staff_infos()),
        document_info=document_info,
        replacements=replacements,
    )


# --- messages --------------------------------------------------------------------------------------


@st.composite
def document_messages(draw: st.DrawFn, doc_type: BusinessDocType | None = None) -> DocumentMessage:
    """A random valid DocumentMessage: 1-3 recipients, 0-3 attachments, optional parts present or not."""
    sender = draw(organizations())
    recipients = draw(st.lists(organizations(), min_size=1, max_size=3, unique_by=lambda o: o.organ_id))
    promulgated = draw(dates())
    number, notation = draw(code_parts())
    kind = draw(st.sampled_from(("conventional", "uuid", "other")))
    if kind == "conventional":
        document_id = make_document_id(sender.organ_id, promulgated, number, notation)
    else:
        document_id = draw(document_ids())
    code = (
        Code(code_number=number, code_notation=notation)
        if draw(st.booleans())
        else Code(code_number=draw(non_empty_texts()), code_notation=draw(texts(max_pieces=2)))
    )
    header = DocumentHeader(
        from_=sender,
        to=tuple(recipients),
        document_id=document_id,
        code=code,
        promulgation_info=PromulgationInfo(place=draw(texts(max_pieces=2)), promulgation_date=promulgated),
        document_type=draw(
            st.one_of(
                st.just(DocumentType()),
                st.builds(
                    DocumentType,
                    type=st.integers(0, 99),
                    type_detail=st.integers(0, 9999),
                    type_name=texts(max_pieces=2),
                ),
            )
        ),
        subject=draw(non_empty_texts()),
        content=draw(texts()),
        signer_info=draw(
            st.one_of(
                st.just(SignerInfo()),
                st.builds(
                    SignerInfo,
                    competence=texts(max_pieces=2),
                    position=texts(max_pieces=2),
                    full_name=texts(max_pieces=2),
                ),
            )
        ),
        due_date=draw(st.none() | dates()),
        other_info=draw(st.one_of(st.just(OtherInfo()), other_infos())),
        response_for=tuple(draw(st.lists(response_fors(), max_size=2))),
        steering_type=draw(st.integers(0, 99)),
        to_places=tuple(draw(st.lists(texts(max_pieces=2), max_size=3))),
    )
    business_id = document_id if draw(st.booleans()) else draw(document_ids())
    files = draw(st.lists(attachments(), max_size=3, unique_by=(lambda a: a.content_id, lambda a: a.name)))
    return DocumentMessage(
        header=header,
        business=draw(businesses(business_id, doc_type)),
        trace=draw(trace_headers()),
        attachments=tuple(files),
    )


@st.composite
def status_messages(draw: st.DrawFn, status_code: StatusCode | None = None) -> StatusMessage:
    """A random valid StatusMessage with any of the 9 status codes."""
    return StatusMessage(
        header=StatusHeader(
            from_=draw(organizations()),
            response_for=draw(response_fors()),
            staff_info=draw(st.one_of(st.just(StaffInfo()), staff_infos())),
            status_code=draw(st.sampled_from(StatusCode)) if status_code is None else status_code,
            description=draw(texts()),
            timestamp=draw(datetimes()),
        ),
        trace=draw(trace_headers()),
    )


def messages() -> st.SearchStrategy[DocumentMessage | StatusMessage]:
    return st.one_of(document_messages(), status_messages())
