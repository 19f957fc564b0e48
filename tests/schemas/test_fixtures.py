"""Hand-written edXML fixtures (tests/fixtures/edxml): an independent check of the parser and the builder.

The 13 variant fixtures (4 business types, 9 status codes) were written by hand from DESIGN.md, not by
``build_message``; they must parse strictly, and our builder must write exactly their form back. Each quirk
fixture (tests/fixtures/edxml/quirks) has ``<name>.expected.json`` saying what each mode must do with it.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

import schemas
from schemas import (
    NAMESPACE,
    BusinessDocType,
    DocumentMessage,
    EdxmlError,
    Message,
    ParseMode,
    SignatureBlock,
    StatusCode,
    StatusMessage,
    build_message,
    format_timestamp,
    parse_message,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "edxml"
QUIRKS = FIXTURES / "quirks"
PDF_HEADER = b"%PDF-"
RESPONDED = "000.03.33.H45,2026/10/15,3120/BC-STC"  # the report every status fixture answers


@dataclass(frozen=True)
class Variant:
    kind: str
    business_type: BusinessDocType | None = None
    status_code: StatusCode | None = None
    from_id: str = ""
    to_ids: tuple[str, ...] = ()
    trace: tuple[tuple[str, str], ...] = ()
    attachments: tuple[tuple[str, str], ...] = ()  # (content id, name)
    checks: dict[str, Any] = field(default_factory=dict)


def _status(code: StatusCode, from_id: str, trace: tuple[tuple[str, str], ...], **checks: Any) -> Variant:
    return Variant(
        "status",
        status_code=code,
        from_id=from_id,
        trace=trace,
        checks={
            "header.response_for.document_id": RESPONDED,
            "header.response_for.organ_id": "000.03.33.H45",
            "header.response_for.promulgation_date": "2026-10-15",
            **checks,
        },
    )


VARIANTS: dict[str, Variant] = {
    "document-new": Variant(
        "document",
        business_type=BusinessDocType.NEW,
        from_id="000.03.33.H45",
        to_ids=("000.00.00.G12", "000.00.00.H45"),
        trace=(("000.03.33.H45", "2026/10/15 14:05:09"), ("000.00.00.H45", "2026/10/15 14:05:31")),
        attachments=(
            ("bao-cao-1", "BC-giai-ngan-quy-III-2026.pdf"),
            ("phu-luc-2", "Phụ lục 01 - Số liệu giải ngân.pdf"),
        ),
        checks={
            "header.document_id": RESPONDED,
            "business.document_id": RESPONDED,
            "header.code.code_number": "3120",
            "header.code.code_notation": "BC-STC",
            "header.promulgation_info.place": "Quảng Nam",
            "header.promulgation_info.promulgation_date": "2026-10-15",
            "header.content": "Thực hiện Công văn số 9876/BTC-ĐT ngày 01/10/2026 của Bộ Tài chính, "
            "Sở Tài chính báo cáo tình hình giải ngân vốn đầu tư công quý III & 9 tháng năm 2026 "
            "(số liệu đến ngày 30/9).",
            "header.signer_info.full_name": "Lê Thị Thu Hà",
            "header.due_date": "2026-10-20",
            "header.other_info.priority": 1,
            "header.other_info.page_amount": 5,
            "header.other_info.appendixes": ["Phụ lục 01: Số liệu giải ngân theo dự án"],
            "header.response_for.0.document_id": "000.00.00.G12,2026/10/01,9876/BTC-ĐT",
            "header.response_for.0.promulgation_date": "2026-10-01",
            "header.to_places": ["Bộ Tài chính (Vụ Đầu tư)", "UBND tỉnh (b/c)", "Lưu: VT, ĐT"],
            "header.from_.fax": "0235 3852 505",
            "header.to.0.organization_in_charge": "",
            "business.reason": "",
            "business.paper": True,
            "business.staff_info.staff": "Phan Văn Đức",
            "business.document_info": None,
            "business.replacements": [],
            "attachments.1.description": "Phụ lục 01",
        },
    ),
    "document-revocation": Variant(
        "document",
        business_type=BusinessDocType.REVOCATION,
        from_id="000.00.00.H41",
        to_ids=("000.09.41.H41", "000.01.41.H41"),
        trace=(("000.00.00.H41", "2026/09/10 08:12:44"),),
        attachments=(("1", "TB-thu-hoi-QD-1234.pdf"),),
        checks={
            "header.document_id": "000.00.00.H41,2026/09/08,1234/QĐ-UBND",
            "header.document_type.type_name": "Quyết định",
            "header.content": "",
            "header.due_date": None,
            "header.response_for": [],
            "header.to_places": [],
            "business.reason": "Thu hồi do văn bản ban hành có sai sót về số liệu diện tích đất; "
            "sẽ ban hành văn bản thay thế.",
            "business.paper": False,
        },
    ),
    "document-update": Variant(
        "document",
        business_type=BusinessDocType.UPDATE,
        from_id="000.00.00.G09",
        to_ids=("000.00.00.H29", "000.00.00.H26", "01.02.G22"),
        trace=(("000.00.00.G09", "2026/08/22 10:00:00"), ("000.00.00.G22", "2026/08/22 10:00:02")),
        attachments=(("cv-2718", "CV-2718-BNV-cap-nhat.pdf"),),
        checks={
            "header.other_info.priority": 2,
            "header.other_info.direction": True,
            "header.steering_type": 1,
            "business.document_info.document_info_changed": False,
            "business.document_info.receivers_changed": True,
            "business.document_info.receivers.0.organ_id": "01.02.G22",
            "business.document_info.receivers.0.receiver_type": 1,
            "business.document_info.receivers.1.organ_id": "000.00.00.H42",
            "business.document_info.receivers.1.receiver_type": 2,
            "business.staff_info.mobile": "",
            "attachments.0.description": "",
        },
    ),
    "document-replacement": Variant(
        "document",
        business_type=BusinessDocType.REPLACEMENT,
        from_id="000.21.79.H29",
        to_ids=("000.00.00.G10",),
        trace=(("000.21.79.H29", "2026/11/02 16:45:00"),),
        attachments=(("kh-456", "KH-456-SYT-thay-the.pdf"),),
        checks={
            "header.content": "Văn bản này thay thế Kế hoạch số 401/KH-SYT ngày 20/10/2026 <đã gửi> "
            'do sai sót ở mục "kinh phí".',
            "business.replacements.0.document_id": "000.21.79.H29,2026/10/20,401/KH-SYT",
            "business.replacements.0.organ_ids": ["000.00.00.G10", "000.00.00.H29"],
            "business.document_info": None,
        },
    ),
    "status-01": _status(
        StatusCode.ARRIVED,
        "000.00.00.G12",
        (
            ("000.00.00.G12", "2026/10/15 14:06:02"),
            ("000.00.00.G22", "2026/10/15 14:06:03"),
            ("000.00.00.H45", "2026/10/15 14:06:05"),
        ),
        **{"header.description": "Đã đến", "header.staff_info.staff": ""},
    ),
    "status-02": _status(
        StatusCode.REFUSED,
        "000.00.00.G12",
        (("000.00.00.G12", "2026/10/15 15:20:11"),),
        **{
            "header.description": "Từ chối tiếp nhận: chữ ký số của cơ quan gửi không hợp lệ "
            "(chứng thư số đã hết hạn). Đề nghị ký lại & gửi lại.",
            "header.staff_info.mobile": "0983 111 222",
        },
    ),
    "status-03": _status(
        StatusCode.REGISTERED,
        "000.00.00.G12",
        (("000.00.00.G12", "2026/10/15 16:02:45"),),
        **{"header.description": "Đã tiếp nhận, vào sổ văn bản đến số 15873"},
    ),
    "status-04": _status(
        StatusCode.ASSIGNED,
        "000.00.00.G12",
        (("000.00.00.G12", "2026/10/16 08:31:00"),),
        **{"header.staff_info.department": "Vụ Đầu tư"},
    ),
    "status-05": _status(
        StatusCode.IN_PROGRESS,
        "000.00.00.G12",
        (),
        **{"header.description": "", "header.timestamp": "2026-10-17 10:15:30+07:00"},
    ),
    "status-06": _status(
        StatusCode.DONE,
        "000.00.00.G12",
        (("000.00.00.G12", "2026/10/22 17:05:00"),),
        **{"header.timestamp": "2026-10-22 17:05:00+07:00"},
    ),
    "status-13": _status(
        StatusCode.RECALL_REQUESTED,
        "000.03.33.H45",
        (("000.03.33.H45", "2026/10/15 15:00:00"), ("000.00.00.H45", "2026/10/15 15:00:01")),
        **{"header.from_.organ_name": "Sở Tài chính tỉnh Quảng Nam"},
    ),
    "status-15": _status(
        StatusCode.RECALL_AGREED,
        "000.00.00.G12",
        (("000.00.00.G12", "2026/10/15 15:12:40"),),
        **{"header.description": "Đồng ý cho lấy lại văn bản"},
    ),
    "status-16": _status(
        StatusCode.RECALL_REFUSED,
        "000.00.00.G12",
        (("000.00.00.G12", "2026/10/23 09:00:00"),),
        **{"header.description": "Từ chối: văn bản đã được xử lý xong; đề nghị gửi văn bản bổ sung/điều chỉnh"},
    ),
}

# Every warning code the parser uses; the quirk fixtures must exercise each at least once.
PARSER_WARNING_CODES = {
    "stray-prefix",
    "legacy-signature",
    "day-first-date",
    "empty-response-for",
    "cid-prefix",
    "business-spelling",
    "document-id-uuid",
    "document-id-other",
    "namespace",
    "surrounding-space",
    "unsafe-attachment-name",
    "content-type-mismatch",
    "attachment-mismatch",
}
REQUIRED_QUIRKS = {
    "legacy-signature",
    "day-first-dates",
    "uuid-document-id",
    "empty-response-for",
    "stray-bytes-before-declaration",
    "cid-without-prefix",
    "business-spelling",
    "bad-organ-id",
    "unknown-status-code",
    "wrong-root",
}
QUIRK_NAMES = sorted(p.name.removesuffix(".edxml") for p in QUIRKS.glob("*.edxml"))


# --- dotted-path checks ----------------------------------------------------------------------------


def resolve(obj: Any, path: str) -> Any:
    """``header.to.0.organ_id`` → the attribute (integer parts index tuples)."""
    for part in path.split("."):
        obj = obj[int(part)] if isinstance(obj, tuple | list) else getattr(obj, part)
    return obj


def matches(actual: Any, expected: Any) -> bool:
    """JSON-ish ``expected`` against a model value: strings compare with str(), lists item by item."""
    if expected is None:
        return actual is None
    if isinstance(expected, bool):
        return isinstance(actual, bool) and actual is expected
    if isinstance(expected, int):
        return not isinstance(actual, bool) and isinstance(actual, int) and int(actual) == expected
    if isinstance(expected, str):
        return actual is not None and str(actual) == expected
    if isinstance(expected, list):
        return (
            isinstance(actual, tuple | list)
            and len(actual) == len(expected)
            and all(matches(a, e) for a, e in zip(actual, expected, strict=True))
        )
    raise TypeError(f"unsupported expectation {expected!r}")


def assert_checks(message: Message, checks: dict[str, Any]) -> None:
    failures = [
        f"{path}: expected {want!r}, got {resolve(message, path)!r}"
        for path, want in checks.items()
        if not matches(resolve(message, path), want)
    ]
    assert not failures, "\n".join(failures)


def test_the_checker_itself_can_fail() -> None:
    parsed = parse_message(FIXTURES / "status-03.edxml").message
    assert matches(resolve(parsed, "header.status_code"), 3)
    assert not matches(resolve(parsed, "header.status_code"), 4)
    assert not matches(resolve(parsed, "header.status_code"), "03")  # str(StatusCode.REGISTERED) is "3"
    assert not matches(resolve(parsed, "trace"), [])
    assert not matches(resolve(parsed, "trace.0.organ_id"), "000.00.00.G22")
    assert not matches(resolve(parsed, "header.response_for.promulgation_date"), None)
    assert not matches(False, 0)
    with pytest.raises(AssertionError, match=r"header\.description"):
        assert_checks(parsed, {"header.description": "Đã đến"})


# --- the 13 variants -------------------------------------------------------------------------------


def test_every_variant_fixture_has_an_expectation_and_vice_versa() -> None:
    on_disk = {p.name.removesuffix(".edxml") for p in FIXTURES.glob("*.edxml")}
    assert on_disk == set(VARIANTS)
    assert {v.business_type for v in VARIANTS.values() if v.kind == "document"} == set(BusinessDocType)
    assert {v.status_code for v in VARIANTS.values() if v.kind == "status"} == set(StatusCode)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_parses_strictly_and_tolerantly_to_equal_models(name: str) -> None:
    path = FIXTURES / f"{name}.edxml"
    strict = parse_message(path)
    tolerant = parse_message(path.read_bytes(), mode=ParseMode.TOLERANT)
    assert strict.warnings == ()
    assert tolerant.warnings == ()
    assert strict.mode is ParseMode.STRICT
    assert tolerant.mode is ParseMode.TOLERANT
    assert strict.signature is SignatureBlock.NONE
    assert strict.message == tolerant.message
    with path.open("rb") as stream:  # a file object reads the same
        assert parse_message(stream).message == strict.message


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_content(name: str) -> None:
    want = VARIANTS[name]
    message = parse_message(FIXTURES / f"{name}.edxml").message
    assert message.kind == want.kind
    assert message.header.from_.organ_id == want.from_id
    assert [(hop.organ_id, format_timestamp(hop.timestamp)) for hop in message.trace] == list(want.trace)
    if isinstance(message, DocumentMessage):
        assert message.business.doc_type is want.business_type
        assert tuple(o.organ_id for o in message.header.to) == want.to_ids
        assert tuple((a.content_id, a.name) for a in message.attachments) == want.attachments
    else:
        assert isinstance(message, StatusMessage)
        assert message.header.status_code is want.status_code
        assert f"<edXML:StatusCode>{want.status_code.code}</edXML:StatusCode>" in (
            FIXTURES / f"{name}.edxml"
        ).read_text(encoding="utf-8")
    assert_checks(message, want.checks)


def _independent_decode(path: Path) -> dict[str, tuple[str, bytes]]:
    """ContentId → (ZIP member name, file bytes), read with lxml, base64 and zipfile only."""
    root = etree.parse(str(path)).getroot()
    out = {}
    for item in root.iterfind(f"{{{NAMESPACE}}}AttachmentEncoded/{{{NAMESPACE}}}Attachment"):
        cid = item.findtext(f"{{{NAMESPACE}}}ContentId")
        encoded = item.findtext(f"{{{NAMESPACE}}}ContentTransferEncoded")
        with zipfile.ZipFile(io.BytesIO(base64.b64decode("".join(encoded.split())))) as archive:
            (member,) = archive.infolist()
            out[cid.removeprefix("cid:")] = (member.filename, archive.read(member))
    return out


@pytest.mark.parametrize("name", sorted(n for n, v in VARIANTS.items() if v.kind == "document"))
def test_variant_attachment_bytes_are_the_pdfs_inside_the_zips(name: str) -> None:
    path = FIXTURES / f"{name}.edxml"
    message = parse_message(path).message
    assert isinstance(message, DocumentMessage)
    assert message.attachments, "every document fixture carries at least one attachment"
    independent = _independent_decode(path)
    assert set(independent) == {a.content_id for a in message.attachments}
    for att in message.attachments:
        member, data = independent[att.content_id]
        assert att.data == data
        assert att.data.startswith(PDF_HEADER)
        assert att.data.rstrip().endswith(b"%%EOF")
        assert att.content_type == "application/pdf"
        assert member == att.name  # the hand-made ZIPs name the file as the manifest does


def _shape(root: etree._Element) -> list[tuple[Any, ...]]:
    """Every element: prefix, name, attributes and text (leaf text only; attachment payloads left out)."""
    out = []
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        leaf_text = None if len(el) or etree.QName(el).localname == "ContentTransferEncoded" else el.text
        out.append((el.prefix, el.tag, dict(el.attrib), leaf_text, dict(el.nsmap) if el.getparent() is None else None))
    return out


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_our_builder_writes_the_hand_written_form(name: str) -> None:
    path = FIXTURES / f"{name}.edxml"
    message = parse_message(path).message
    built = build_message(message)
    assert parse_message(built).message == message
    # Element for element (prefixes, order, Ids, text), the builder's output is the hand-written file.
    assert _shape(etree.fromstring(built)) == _shape(etree.parse(str(path)).getroot())


# --- quirks ----------------------------------------------------------------------------------------


def _expected(name: str) -> dict[str, Any]:
    return json.loads((QUIRKS / f"{name}.expected.json").read_text(encoding="utf-8"))


def test_every_quirk_fixture_has_an_expectation_and_vice_versa() -> None:
    fixtures = {p.name.removesuffix(".edxml") for p in QUIRKS.glob("*.edxml")}
    expectations = {p.name.removesuffix(".expected.json") for p in QUIRKS.glob("*.expected.json")}
    assert fixtures == expectations
    assert fixtures >= REQUIRED_QUIRKS


def test_quirk_fixtures_exercise_every_parser_warning() -> None:
    seen = {
        code
        for name in QUIRK_NAMES
        for mode in ("strict", "tolerant")
        for code in _expected(name)[mode].get("warnings", [])
    }
    assert seen == PARSER_WARNING_CODES


@pytest.mark.parametrize("mode", list(ParseMode), ids=lambda m: m.value)
@pytest.mark.parametrize("name", QUIRK_NAMES)
def test_quirk_fixture_meets_its_expectation(name: str, mode: ParseMode) -> None:
    want = _expected(name)[mode.value]
    source = (QUIRKS / f"{name}.edxml").read_bytes()
    if want["outcome"] == "error":
        with pytest.raises(EdxmlError) as caught:
            parse_message(source, mode=mode)
        error = caught.value
        if "error_type" in want:
            assert type(error) is getattr(schemas, want["error_type"])
        assert want["error_contains"] in str(error)
        assert error.location is not None or isinstance(error, schemas.UnreadableXmlError)
        return
    assert want["outcome"] == "ok"
    parsed = parse_message(source, mode=mode)
    assert Counter(w.code for w in parsed.warnings) == Counter(want.get("warnings", []))
    assert all(w.message for w in parsed.warnings)
    assert parsed.signature is SignatureBlock(want.get("signature", "none"))
    assert_checks(parsed.message, want.get("checks", {}))


# Quirks of the form are gone once we write a message again; a quirk of the content (a "PDF" that is not
# one) travels with the bytes, so our own output still earns it.
CONTENT_QUIRKS = {"content-type-mismatch"}
TOLERATED = [
    n
    for n in QUIRK_NAMES
    if _expected(n)["strict"]["outcome"] == "error" and _expected(n)["tolerant"]["outcome"] == "ok"
]
READ_TOLERANTLY = [n for n in QUIRK_NAMES if _expected(n)["tolerant"]["outcome"] == "ok"]


def test_tolerated_and_refused_quirks_are_both_present() -> None:
    assert len(TOLERATED) >= 7
    assert {"bad-organ-id", "unknown-status-code", "wrong-root"}.isdisjoint(READ_TOLERANTLY)


@pytest.mark.parametrize("name", TOLERATED)
def test_a_quirk_refused_strictly_but_read_tolerantly_says_so(name: str) -> None:
    with pytest.raises(EdxmlError, match=r"accepted with a warning in tolerant mode"):
        parse_message(QUIRKS / f"{name}.edxml")


@pytest.mark.parametrize("name", READ_TOLERANTLY)
def test_what_tolerant_mode_reads_we_write_cleanly(name: str) -> None:
    message = parse_message(QUIRKS / f"{name}.edxml", mode=ParseMode.TOLERANT).message
    content_quirks = CONTENT_QUIRKS & set(_expected(name)["tolerant"]["warnings"])
    built = build_message(message)
    if content_quirks:
        with pytest.raises(EdxmlError):
            parse_message(built)
        again = parse_message(built, mode=ParseMode.TOLERANT)
        assert {w.code for w in again.warnings} == content_quirks
    else:
        again = parse_message(built)  # strict: our own form, XSD-valid
        assert {w.code for w in again.warnings} <= {"document-id-uuid", "document-id-other"}
    assert again.message == message
