"""Round trip of the edXML model: build → parse → build is byte-identical and parse(build(m)) == m.

The random messages come from :mod:`tests.schemas.strategies`: all 4 business types, all 9 status codes,
Vietnamese text in NFC and NFD, XML-special characters, CR/LF/TAB, surrounding spaces, emoji, both forms of
organisation codes, three kinds of DocumentId, datetimes in many zones.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import xmlschema
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree
from pydantic import ValidationError

from schemas import (
    VIETNAM_TIME,
    Attachment,
    Business,
    BusinessDocType,
    BusinessDocumentInfo,
    DocumentIdForm,
    DocumentMessage,
    Message,
    Organization,
    ParseMode,
    ReplacementInfo,
    ResponseFor,
    StatusCode,
    StatusHeader,
    StatusMessage,
    TraceHeader,
    build_message,
    document_id_form,
    parse_message,
    schema_path,
)
from tests.schemas.strategies import document_messages, messages, status_messages

ROUND_TRIP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NOTE_CODES = {DocumentIdForm.UUID: "document-id-uuid", DocumentIdForm.OTHER: "document-id-other"}


def document_ids_in(message: Message) -> list[str]:
    """Every DocumentId the parser looks at, in any order."""
    if isinstance(message, StatusMessage):
        return [message.header.response_for.document_id]
    ids = [message.header.document_id, message.business.document_id]
    ids += [rf.document_id for rf in message.header.response_for]
    ids += [rep.document_id for rep in message.business.replacements]
    return ids


def expected_notes(message: Message) -> Counter[str]:
    forms = (document_id_form(i) for i in document_ids_in(message))
    return Counter(NOTE_CODES[f] for f in forms if f in NOTE_CODES)


# --- properties ------------------------------------------------------------------------------------


@ROUND_TRIP
@given(messages())
def test_build_parse_build_is_byte_identical(message: Message) -> None:
    built = build_message(message)
    assert build_message(parse_message(built).message) == built


@ROUND_TRIP
@given(messages())
def test_parse_of_build_gives_the_model_back_in_both_modes(message: Message) -> None:
    built = build_message(message)
    strict = parse_message(built)
    tolerant = parse_message(built, mode=ParseMode.TOLERANT)
    assert strict.message == message
    assert tolerant.message == message
    assert strict.mode is ParseMode.STRICT
    assert tolerant.mode is ParseMode.TOLERANT


@ROUND_TRIP
@given(messages())
def test_our_output_only_earns_document_id_notes(message: Message) -> None:
    built = build_message(message)
    for mode in ParseMode:
        parsed = parse_message(built, mode=mode)
        assert Counter(w.code for w in parsed.warnings) == expected_notes(message), parsed.warnings


@FEW
@given(messages())
def test_output_is_valid_against_the_xsd(message: Message) -> None:
    kind = "document" if isinstance(message, DocumentMessage) else "status"
    schema = _xsd(kind)
    tree = etree.fromstring(build_message(message))
    errors = list(schema.iter_errors(tree))
    assert not errors, errors[0]
    # and the other kind's schema refuses it: the two are really different
    other = _xsd("status" if kind == "document" else "document")
    assert not other.is_valid(tree)


@ROUND_TRIP
@given(messages())
def test_builds_are_deterministic(message: Message) -> None:
    first = build_message(message)
    assert build_message(message) == first
    rebuilt = type(message).model_validate(message.model_dump())
    assert build_message(rebuilt) == first


@ROUND_TRIP
@given(messages())
def test_model_canonicalisation_is_idempotent(message: Message) -> None:
    # Python mode only: JSON mode cannot carry Attachment.data (binary bytes are serialised as UTF-8).
    assert type(message).model_validate(message.model_dump()) == message


@FEW
@given(st.sampled_from(BusinessDocType).flatmap(document_messages))
def test_every_business_type_round_trips(message: DocumentMessage) -> None:
    built = build_message(message)
    parsed = parse_message(built).message
    assert isinstance(parsed, DocumentMessage)
    assert parsed.business.doc_type is message.business.doc_type
    assert f"<edXML:BussinessDocType>{int(message.business.doc_type)}</edXML:BussinessDocType>".encode() in built
    assert parsed == message


@pytest.mark.parametrize("code", list(StatusCode), ids=lambda c: c.code)
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_status_code_round_trips(code: StatusCode, data: st.DataObject) -> None:
    message = data.draw(status_messages(code))
    built = build_message(message)
    assert f"<edXML:StatusCode>{code.value:02d}</edXML:StatusCode>".encode() in built
    parsed = parse_message(built).message
    assert isinstance(parsed, StatusMessage)
    assert parsed.header.status_code is code
    assert parsed == message


# Anything the model accepts must be writable and read back the same: the model is the gate.
@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
@example("a\x01b")
@example("a\ufffeb")
def test_any_document_id_the_model_accepts_round_trips(text: str) -> None:
    try:
        business = Business(document_id=text)
    except ValidationError:
        return
    message = _minimal_document(business=business)
    assert parse_message(build_message(message), mode=ParseMode.TOLERANT).message == message


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12))
@example("cid:cid:1")
@example("x\x01")
def test_any_content_id_the_model_accepts_round_trips(text: str) -> None:
    try:
        attachment = Attachment(content_id=text, name="a.txt", content_type="text/plain", data=b"x")
    except ValidationError:
        return
    message = _minimal_document(attachments=(attachment,))
    assert parse_message(build_message(message)).message == message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=16), st.sampled_from(("text/plain", "Application/PDF", "application/xml", "image/png")))
@example("../", "text/plain")
@example("\x7f", "text/plain")
@example("Báo cáo.pdf", "application/pdf")
def test_any_attachment_name_is_refused_with_a_validation_error_or_round_trips(name: str, content_type: str) -> None:
    data = {"application/pdf": b"%PDF-1.7", "application/xml": b"<x/>"}.get(content_type.lower(), b"\x00\xff")
    try:
        attachment = Attachment(content_id="1", name=name, content_type=content_type, data=data)
    except ValidationError:
        return
    message = _minimal_document(attachments=(attachment,))
    assert parse_message(build_message(message)).message == message


# --- canonicalisation examples ---------------------------------------------------------------------

_NGHE_AN = "Ủy ban nhân dân tỉnh Nghệ An"


def test_nfd_input_equals_nfc_input() -> None:
    nfd = unicodedata.normalize("NFD", _NGHE_AN)
    assert nfd != _NGHE_AN
    a = Organization(organ_id="000.00.00.H41", organ_name=nfd)
    b = Organization(organ_id="000.00.00.H41", organ_name=_NGHE_AN)
    assert a == b
    assert a.organ_name == _NGHE_AN
    assert unicodedata.is_normalized("NFC", a.organ_name)
    assert build_message(_minimal_document(sender=a)) == build_message(_minimal_document(sender=b))


def test_nfd_attachment_name_is_stored_nfc() -> None:
    name = "Báo cáo tháng 10.pdf"
    att = Attachment(
        content_id="1", name=unicodedata.normalize("NFD", name), content_type="application/pdf", data=b"%PDF-1.7"
    )
    assert att.name == name


def test_utc_timestamp_equals_the_same_instant_in_vietnam_time_and_is_written_so() -> None:
    utc = TraceHeader(organ_id="000.00.00.G22", timestamp=datetime(2026, 11, 16, 2, 30, tzinfo=UTC))
    ict = TraceHeader(
        organ_id="000.00.00.G22", timestamp=datetime(2026, 11, 16, 9, 30, tzinfo=timezone(timedelta(hours=7)))
    )
    naive = TraceHeader(organ_id="000.00.00.G22", timestamp=datetime(2026, 11, 16, 9, 30))
    assert utc == ict == naive
    assert utc.timestamp.utcoffset() == timedelta(hours=7)
    assert utc.timestamp.hour == 9
    built = build_message(_minimal_document(trace=(utc,)))
    assert b"<edXML:Timestamp>2026/11/16 09:30:00</edXML:Timestamp>" in built


def test_timestamp_crossing_midnight_is_written_with_the_vietnam_date() -> None:
    late = datetime(2026, 12, 31, 20, 0, 1, tzinfo=UTC)  # 2027/01/01 03:00:01 in Hà Nội
    status = _status(timestamp=late)
    assert status.header.timestamp.year == 2027
    assert b"<edXML:Timestamp>2027/01/01 03:00:01</edXML:Timestamp>" in build_message(status)


def test_microseconds_are_dropped() -> None:
    precise = TraceHeader(organ_id="000.00.00.G22", timestamp=datetime(2026, 11, 16, 9, 30, 5, 999_999))
    whole = TraceHeader(organ_id="000.00.00.G22", timestamp=datetime(2026, 11, 16, 9, 30, 5))
    assert precise.timestamp.microsecond == 0
    assert precise == whole
    message = _minimal_document(trace=(precise,))
    assert parse_message(build_message(message)).message == message


def test_timestamp_out_of_range_in_vietnam_time_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="out of range"):
        TraceHeader(organ_id="000.00.00.G22", timestamp=datetime(9999, 12, 31, 23, 0, tzinfo=UTC))


def test_content_id_prefix_is_dropped_once_and_for_all() -> None:
    for given_id in ("7", "cid:7", "cid:cid:7"):
        att = Attachment(content_id=given_id, name="a.pdf", content_type="application/pdf", data=b"%PDF-1.7")
        assert att.content_id == "7", given_id
    message = _minimal_document(
        attachments=(Attachment(content_id="cid:cid:7", name="a.pdf", content_type="application/pdf", data=b"%PDF-"),)
    )
    built = build_message(message)
    assert built.count(b"<ContentId>cid:7</ContentId>") == 1
    assert built.count(b"<edXML:ContentId>cid:7</edXML:ContentId>") == 1
    assert parse_message(built).message == message


def test_content_type_is_lowercased() -> None:
    att = Attachment(content_id="1", name="a.pdf", content_type="Application/PDF", data=b"%PDF-1.7")
    assert att.content_type == "application/pdf"


# --- validation errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        pytest.param(
            lambda: Business(document_id="X-1", doc_type=BusinessDocType.UPDATE, reason="Sửa số liệu"),
            "needs document_info (BussinessDocumentInfo)",
            id="update-without-document-info",
        ),
        pytest.param(
            lambda: Business(document_id="X-1", doc_type=BusinessDocType.REPLACEMENT, reason="Thay thế"),
            "needs replacements (ReplacementInfoList)",
            id="replacement-without-replacements",
        ),
        pytest.param(
            lambda: Business(document_id="X-1", doc_type=BusinessDocType.REVOCATION),
            "revocation needs a reason (BussinessDocReason)",
            id="revocation-without-reason",
        ),
        pytest.param(
            lambda: Business(document_id="X-1", doc_type=BusinessDocType.UPDATE, document_info=BusinessDocumentInfo()),
            "update needs a reason",
            id="update-without-reason",
        ),
        pytest.param(
            lambda: Business(document_id="X-1", document_info=BusinessDocumentInfo()),
            "belongs to updates (BussinessDocType 2) only",
            id="document-info-on-new",
        ),
        pytest.param(
            lambda: Business(
                document_id="X-1",
                reason="Thu hồi",
                doc_type=BusinessDocType.REVOCATION,
                replacements=(ReplacementInfo(document_id="X-0", organ_ids=("000.00.00.G22",)),),
            ),
            "belong to replacements (BussinessDocType 3) only",
            id="replacements-on-revocation",
        ),
        pytest.param(
            lambda: ReplacementInfo(document_id="X-0", organ_ids=()),
            "organ_ids",
            id="replacement-without-organs",
        ),
        pytest.param(
            lambda: _minimal_document(recipients=(_org("000.00.00.G12"), _org("000.00.00.G22"), _org("000.00.00.G12"))),
            "recipient listed twice in To: 000.00.00.G12",
            id="duplicate-recipient",
        ),
        pytest.param(
            lambda: _minimal_document(recipients=()),
            "to",
            id="no-recipient",
        ),
        pytest.param(
            lambda: _minimal_document(
                attachments=(
                    Attachment(content_id="1", name="a.pdf", content_type="application/pdf", data=b"%PDF-"),
                    Attachment(content_id="cid:1", name="b.pdf", content_type="application/pdf", data=b"%PDF-"),
                )
            ),
            "two attachments share the content id '1'",
            id="duplicate-content-id",
        ),
        pytest.param(
            lambda: _minimal_document(
                attachments=(
                    Attachment(content_id="1", name="a.pdf", content_type="application/pdf", data=b"%PDF-"),
                    Attachment(content_id="2", name="a.pdf", content_type="application/pdf", data=b"%PDF-"),
                )
            ),
            "two attachments share the name 'a.pdf'",
            id="duplicate-attachment-name",
        ),
        pytest.param(
            lambda: Attachment(content_id="1", name="../../etc/passwd", content_type="text/plain", data=b""),
            "is unsafe (paths, control characters); use 'passwd'",
            id="unsafe-attachment-name",
        ),
        pytest.param(
            lambda: Attachment(content_id="1", name="../", content_type="text/plain", data=b""),
            "attachment name '../' is unusable: attachment name is empty",
            id="attachment-name-with-nothing-left",
        ),
        pytest.param(
            lambda: Attachment(content_id="1", name="C:\\bao cao.pdf", content_type="application/pdf", data=b""),
            "is unsafe",
            id="drive-letter-attachment-name",
        ),
        pytest.param(
            lambda: Attachment(content_id="a b", name="a.pdf", content_type="application/pdf", data=b""),
            "must be a non-empty token",
            id="content-id-with-space",
        ),
        pytest.param(
            lambda: Attachment(content_id="1", name="a.pdf", content_type="pdf", data=b""),
            "is not a MIME type",
            id="bad-content-type",
        ),
        pytest.param(
            lambda: Organization(organ_id="000.00.00.h41", organ_name="UBND tỉnh Nghệ An"),
            "organisation code '000.00.00.h41' contains 'h'",
            id="bad-organ-id-lowercase",
        ),
        pytest.param(
            lambda: Organization(organ_id="UBND-NA", organ_name="UBND tỉnh Nghệ An"),
            "organisation code 'UBND-NA'",
            id="bad-organ-id-form",
        ),
        pytest.param(
            lambda: Organization(organ_id="000.00.00.H41", organ_name=""),
            "organ_name",
            id="empty-organ-name",
        ),
        pytest.param(
            lambda: Business(document_id=" 000.00.00.H41,2026/11/16,1/BC"),
            "without surrounding spaces",
            id="document-id-with-space",
        ),
        pytest.param(
            lambda: Business(document_id="A\nB"),
            "on one line",
            id="document-id-on-two-lines",
        ),
        pytest.param(
            lambda: Business(document_id="x" * 257),
            "at most 256",
            id="document-id-too-long",
        ),
        pytest.param(
            lambda: Business(document_id="VB\x01123"),
            "XML",
            id="document-id-with-control-character",
        ),
        pytest.param(
            lambda: Attachment(content_id="x\x02", name="a.pdf", content_type="application/pdf", data=b""),
            "XML",
            id="content-id-with-control-character",
        ),
        pytest.param(
            lambda: Organization(organ_id="000.00.00.H41", organ_name="UBND\x0btỉnh"),
            "U+000B",
            id="text-with-control-character",
        ),
        pytest.param(
            lambda: _status(status_code=7),
            "status_code",
            id="status-code-07",
        ),
    ],
)
def test_invalid_models_are_refused_naming_the_problem(build: object, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        build()  # type: ignore[operator]
    assert expected in str(caught.value)


# --- helpers ---------------------------------------------------------------------------------------


def _xsd(kind: str) -> xmlschema.XMLSchema10:
    cached = _SCHEMAS.get(kind)
    if cached is None:
        cached = _SCHEMAS[kind] = xmlschema.XMLSchema10(str(schema_path(kind)), allow="local")
    return cached


_SCHEMAS: dict[str, xmlschema.XMLSchema10] = {}


def _org(organ_id: str, name: str = "Cơ quan") -> Organization:
    return Organization(organ_id=organ_id, organ_name=name)


def _minimal_document(
    *,
    sender: Organization | None = None,
    recipients: tuple[Organization, ...] | None = None,
    business: Business | None = None,
    trace: tuple[TraceHeader, ...] = (),
    attachments: tuple[Attachment, ...] = (),
) -> DocumentMessage:
    from schemas import Code, DocumentHeader, PromulgationInfo

    document_id = "000.00.00.H41,2026/11/16,12/BC-UBND"
    return DocumentMessage(
        header=DocumentHeader(
            from_=sender or _org("000.00.00.H41", "UBND tỉnh Nghệ An"),
            to=recipients if recipients is not None else (_org("000.00.00.G22", "Văn phòng Chính phủ"),),
            document_id=document_id,
            code=Code(code_number="12", code_notation="BC-UBND"),
            promulgation_info=PromulgationInfo(place="Nghệ An", promulgation_date=date(2026, 11, 16)),
            subject="Báo cáo",
        ),
        business=business or Business(document_id=document_id),
        trace=trace,
        attachments=attachments,
    )


def _status(*, status_code: int = 1, timestamp: datetime | None = None) -> StatusMessage:
    return StatusMessage(
        header=StatusHeader(
            from_=_org("000.00.00.G22", "Văn phòng Chính phủ"),
            response_for=ResponseFor(organ_id="000.00.00.H41", document_id="000.00.00.H41,2026/11/16,12/BC-UBND"),
            status_code=status_code,
            timestamp=timestamp or datetime(2026, 11, 16, 10, 0, tzinfo=VIETNAM_TIME),
        )
    )
