"""Attachments in the ``AttachmentEncoded`` convention: base64 of a one-file ZIP, referenced by ``cid:``.

Issue requirements covered here: decoded without holding more than needed in memory; configurable size
limits; names sanitized (no paths, no control characters); declared content type checked against the
bytes for PDF and XML; ZIP bombs and malformed archives refused.
"""

from __future__ import annotations

import base64
import functools
import io
import re
import struct
import time
import tracemalloc
import unicodedata
import zipfile

import pytest

from node.samples import sample_monthly_report, sample_pdf
from schemas import (
    Attachment,
    AttachmentError,
    AttachmentLimits,
    DocumentMessage,
    InvalidEdxmlError,
    Location,
    ParseLimits,
    ParseMode,
    UnsafeXmlError,
    build_message,
    content_type_problem,
    decode_attachment,
    encode_attachment,
    parse_message,
    sanitize_attachment_name,
)

MiB = 1024 * 1024
XML_BYTES = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<BieuMau><ChiTieu ma="01">Thu ngân sách</ChiTieu></BieuMau>\n'.encode()
)
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


# --- helpers ----------------------------------------------------------------------------------------


def make_zip(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, compress_type=method)
    return buffer.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def patch_header(
    raw: bytes, *, local_offset: int, central_offset: int, fmt: str, value: int, bitor: bool = False
) -> bytes:
    """Overwrite one field in the (single) local and central headers of a ZIP."""
    out = bytearray(raw)
    for signature, offset in ((b"PK\x03\x04", local_offset), (b"PK\x01\x02", central_offset)):
        at = out.index(signature) + offset
        old = struct.unpack_from(fmt, out, at)[0]
        struct.pack_into(fmt, out, at, old | value if bitor else value)
    return bytes(out)


def with_declared_size(raw: bytes, size: int) -> bytes:
    return patch_header(raw, local_offset=22, central_offset=24, fmt="<I", value=size)


def with_flag(raw: bytes, bit: int) -> bytes:
    return patch_header(raw, local_offset=6, central_offset=8, fmt="<H", value=bit, bitor=True)


def peak_allocation(call: object) -> tuple[int, BaseException | None]:
    tracemalloc.start()
    try:
        call()  # type: ignore[operator]
        error = None
    except Exception as e:
        error = e
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, error


# --- encode / decode --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type", "data"),
    [
        pytest.param("bao-cao.pdf", "application/pdf", sample_pdf(), id="pdf"),
        pytest.param("bieu-mau.xml", "application/xml", XML_BYTES, id="xml"),
        pytest.param("du-lieu.bin", "application/octet-stream", bytes(range(256)) * 64, id="binary"),
        pytest.param("rong.txt", "text/plain", b"", id="empty"),
        pytest.param("rong.pdf", "application/pdf", b"", id="empty-stored"),
        pytest.param("Báo cáo tháng 10 – Sở Tài chính.docx", DOCX, b"PK\x03\x04 not really", id="vietnamese-name"),
    ],
)
def test_round_trip(name: str, content_type: str, data: bytes) -> None:
    encoded = encode_attachment(name, content_type, data)
    assert encoded.isascii() and "\n" not in encoded
    decoded = decode_attachment(encoded)
    assert decoded.data == data
    assert decoded.member_name == name
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(encoded))) as archive:
        (member,) = archive.infolist()
        assert member.filename == name
        assert member.date_time == (1980, 1, 1, 0, 0, 0)  # no clock in the bytes
        if not name.isascii():
            assert member.flag_bits & 0x800  # the name is flagged as UTF-8 for other unzip tools


def test_already_compressed_types_are_stored_and_others_deflated() -> None:
    def method(content_type: str, data: bytes) -> int:
        raw = base64.b64decode(encode_attachment("f", content_type, data))
        return zipfile.ZipFile(io.BytesIO(raw)).infolist()[0].compress_type

    assert method("application/pdf", sample_pdf()) == zipfile.ZIP_STORED
    assert method(DOCX, b"PK") == zipfile.ZIP_STORED
    assert method("application/xml", XML_BYTES) == zipfile.ZIP_DEFLATED
    assert method("text/plain", b"x" * 1000) == zipfile.ZIP_DEFLATED


def test_encoding_is_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    data = sample_pdf("determinism", size=10_000)
    first = encode_attachment("báo cáo.pdf", "application/pdf", data)
    assert encode_attachment("báo cáo.pdf", "application/pdf", data) == first
    xml_first = encode_attachment("bieu-mau.xml", "application/xml", XML_BYTES * 50)
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)  # a different "now" changes nothing
    assert encode_attachment("báo cáo.pdf", "application/pdf", data) == first
    assert encode_attachment("bieu-mau.xml", "application/xml", XML_BYTES * 50) == xml_first


def test_line_wrapped_base64_is_accepted() -> None:
    data = XML_BYTES * 100
    encoded = encode_attachment("x.xml", "application/xml", data)
    wrapped = "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    assert decode_attachment("\n    " + wrapped + "\n  ").data == data


# --- hostile archives -------------------------------------------------------------------------------

ZEROS_10M = make_zip([("zeros.bin", bytes(10 * MiB))])
ONE_MIB = AttachmentLimits(max_attachment_bytes=MiB)


def test_zip_bomb_is_refused_cheaply() -> None:
    encoded = b64(ZEROS_10M)
    start = time.perf_counter()
    peak, error = peak_allocation(lambda: decode_attachment(encoded, limits=ONE_MIB))
    assert isinstance(error, AttachmentError)
    assert "10485760" in error.message and str(MiB) in error.message
    assert time.perf_counter() - start < 1.0
    assert peak < 2 * MiB, f"refusing the bomb allocated {peak} bytes"


@pytest.mark.parametrize("declared", [0, 1000, 512 * 1024])
def test_zip_whose_header_understates_the_size_is_refused(declared: int) -> None:
    """The header claims a small file (passing the size and ratio checks); inflating proves otherwise."""
    lying = with_declared_size(ZEROS_10M, declared)
    assert zipfile.ZipFile(io.BytesIO(lying)).infolist()[0].file_size == declared
    limits = AttachmentLimits(max_attachment_bytes=MiB, max_compression_ratio=10**9)
    peak, error = peak_allocation(lambda: decode_attachment(b64(lying), limits=limits))
    assert isinstance(error, AttachmentError)
    assert peak < 3 * MiB, f"{peak} bytes allocated while refusing"


def test_zip_whose_header_overstates_the_size_is_refused() -> None:
    raw = make_zip([("a.txt", b"hello" * 100)])
    with pytest.raises(AttachmentError, match="declares 1073741824 bytes"):
        decode_attachment(b64(with_declared_size(raw, 1 << 30)))


def test_high_compression_ratio_is_refused() -> None:
    encoded = b64(make_zip([("zeros.bin", bytes(MiB))]))  # about 1000:1
    with pytest.raises(AttachmentError, match=r"compression ratio \d+:1 exceeds 200:1"):
        decode_attachment(encoded)
    # The ratio alone refused it: raise the ratio and the same archive is fine.
    assert decode_attachment(encoded, limits=AttachmentLimits(max_compression_ratio=10_000)).data == bytes(MiB)


def test_inflating_beyond_the_limit_is_refused() -> None:
    data = sample_pdf("big", size=3 * MiB)  # incompressible: ratio about 1
    encoded = encode_attachment("big.pdf", "application/pdf", data)
    with pytest.raises(AttachmentError, match="limit"):
        decode_attachment(encoded, limits=AttachmentLimits(max_attachment_bytes=len(data) - 1))
    assert decode_attachment(encoded, limits=AttachmentLimits(max_attachment_bytes=len(data))).data == data


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        pytest.param(make_zip([("a.pdf", b"%PDF-1"), ("b.pdf", b"%PDF-2")]), "exactly one file, it holds 2", id="two"),
        pytest.param(make_zip([]), "exactly one file, it holds 0", id="none"),
        pytest.param(with_flag(make_zip([("a.txt", b"secret")]), 0x1), "encrypted", id="encrypted"),
        pytest.param(make_zip([("a.txt", b"x" * 100)], zipfile.ZIP_BZIP2), "compression method 12", id="bzip2"),
        pytest.param(make_zip([("a.txt", b"x" * 100)], zipfile.ZIP_LZMA), "compression method 14", id="lzma"),
        pytest.param(b"%PDF-1.7 a bare PDF, not zipped", "not a ZIP", id="not-a-zip"),
        pytest.param(b"", "not a ZIP", id="empty"),
        pytest.param(make_zip([("a.txt", b"hello" * 100)])[:-30], "not a ZIP", id="truncated"),
    ],
)
def test_malformed_archive_is_refused(raw: bytes, says: str) -> None:
    with pytest.raises(AttachmentError, match=re.escape(says)):
        decode_attachment(b64(raw))


def test_damaged_member_data_is_refused() -> None:
    raw = bytearray(make_zip([("a.txt", b"hello world, " * 200)]))
    body = raw.index(b"PK\x03\x04") + 30 + len("a.txt")
    raw[body + 5 : body + 15] = b"\xff" * 10
    with pytest.raises(AttachmentError, match="damaged"):
        decode_attachment(b64(bytes(raw)))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("@@@@", id="symbols"),
        pytest.param("UEsDBA=" + "=" * 3 + "x", id="data-after-padding"),
        pytest.param("UEsDB\u00e1AAA", id="non-ascii"),
        pytest.param("UEsDBBQ", id="truncated-quantum"),
    ],
)
def test_invalid_base64_is_refused(text: str) -> None:
    with pytest.raises(AttachmentError, match="not valid base64"):
        decode_attachment(text)


def test_oversized_base64_is_refused_before_decoding() -> None:
    # Not even base64: had it been decoded, the error would say so instead of naming the limit.
    for text in ("!" * (4 * MiB), "!!!!\n" * MiB):
        with pytest.raises(AttachmentError, match=f"larger than the limit of {MiB} bytes"):
            decode_attachment(text, limits=ONE_MIB)
    valid = b64(make_zip([("a.bin", bytes(range(256)) * 8192)], zipfile.ZIP_STORED))  # 2 MiB stored
    peak, error = peak_allocation(lambda: decode_attachment(valid, limits=ONE_MIB))
    assert isinstance(error, AttachmentError) and "larger than the limit" in error.message
    assert peak < len(valid) // 2, "the text was decoded (or copied) before its size was checked"


def test_errors_carry_the_given_location() -> None:
    where = Location(42, "/edXML/AttachmentEncoded/Attachment/ContentTransferEncoded")
    with pytest.raises(AttachmentError) as info:
        decode_attachment("@@@@", location=where)
    assert info.value.location == where
    assert str(info.value).startswith("line 42, /edXML/AttachmentEncoded")


# --- names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("/etc/passwd", "passwd"),
        ("C:\\Windows\\evil.exe", "evil.exe"),
        ("..\\..\\báo cáo.pdf", "báo cáo.pdf"),
        ("C:evil.pdf", "evil.pdf"),
        ("a\x00b.pdf", "ab.pdf"),
        ("\x1b[31mred.pdf", "[31mred.pdf"),
        ("tai-lieu\u202efdp.exe", "tai-lieufdp.exe"),  # RTL override would show it as ...exe.pdf
        ("zero\u200bwidth.pdf", "zerowidth.pdf"),
        ("line\nbreak\r.pdf", "linebreak.pdf"),
        (".htaccess", "htaccess"),
        ("...hidden.pdf", "hidden.pdf"),
        ("  . spaced.pdf  ", "spaced.pdf"),
        ("Báo cáo tháng 10.pdf", "Báo cáo tháng 10.pdf"),
        ("bao-cao.pdf", "bao-cao.pdf"),
    ],
)
def test_sanitize_attachment_name(name: str, safe: str) -> None:
    assert sanitize_attachment_name(name) == safe


def test_sanitize_turns_nfd_into_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "Báo cáo quý IV – Ủy ban.pdf")
    assert nfd != unicodedata.normalize("NFC", nfd)
    out = sanitize_attachment_name(nfd)
    assert out == unicodedata.normalize("NFC", "Báo cáo quý IV – Ủy ban.pdf")
    assert unicodedata.is_normalized("NFC", out)


@pytest.mark.parametrize(
    ("name", "ext"),
    [
        pytest.param("x" * 300 + ".pdf", ".pdf", id="ascii"),
        pytest.param("ắ" * 200 + ".pdf", ".pdf", id="three-byte-letters"),
        pytest.param(unicodedata.normalize("NFD", "Báo cáo " * 60) + ".docx", ".docx", id="nfd"),
        pytest.param("a." + "b" * 300, None, id="no-usable-extension"),
    ],
)
def test_long_names_are_trimmed_keeping_the_extension(name: str, ext: str | None) -> None:
    out = sanitize_attachment_name(name)
    assert len(out.encode("utf-8")) <= 255
    assert len(out.encode("utf-8")) >= 240  # trimmed, not emptied
    if ext is not None:
        assert out.endswith(ext)
    assert unicodedata.is_normalized("NFC", out)


@pytest.mark.parametrize(
    "name", ["", "   ", "/", "///", "\\\\", "..", "../..", "./", "\x00\x01", "\u202e", "C:\\", " . "]
)
def test_names_with_nothing_usable_are_refused(name: str) -> None:
    with pytest.raises(AttachmentError, match="empty"):
        sanitize_attachment_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "../" * 50 + "x.pdf",
        "a/b\\c/../d.pdf",
        "\u202e\u2066\u2069x\u200d.pdf",
        "\x7f\x85x.pdf",
        "con:x.pdf",
        "/" + "é" * 300,
        "." * 10 + "x",
        "x\ud800y.pdf",  # a lone surrogate cannot be written to a file system either
    ],
)
def test_sanitized_names_have_no_paths_or_control_characters(name: str) -> None:
    out = sanitize_attachment_name(name)
    assert out and out == out.strip()
    assert not out.startswith(".")
    assert not set(out) & {"/", "\\", ":"}
    assert all(unicodedata.category(c) not in ("Cc", "Cf", "Cs") for c in out)
    assert len(out.encode("utf-8")) <= 255
    assert sanitize_attachment_name(out) == out  # idempotent


# --- content types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("application/pdf", sample_pdf()),
        ("APPLICATION/PDF", sample_pdf()),
        ("application/pdf", b"\x00" * 500 + b"%PDF-1.4\n"),  # header within the first 1024 bytes
        ("application/xml", XML_BYTES),
        ("text/xml; charset=utf-8", b"<a/>"),
        ("application/xml", b"\xef\xbb\xbf \r\n<a/>"),
        ("application/vnd.example+xml", b"<a/>"),
        ("image/png", b"not checked"),  # only PDF and XML are checked
        ("application/octet-stream", b""),
    ],
)
def test_matching_content_types_have_no_problem(content_type: str, data: bytes) -> None:
    assert content_type_problem(content_type, data) is None


@pytest.mark.parametrize(
    ("content_type", "data", "says"),
    [
        ("application/pdf", b"<html>not a pdf</html>", "%PDF-"),
        ("application/pdf", b"", "%PDF-"),
        ("application/pdf", b"\x00" * 2000 + b"%PDF-1.4", "%PDF-"),
        ("application/xml", sample_pdf(), "'<'"),
        ("text/xml", b"", "'<'"),
        ("application/atom+xml", b"{}", "'<'"),
    ],
)
def test_mismatching_content_types_are_described(content_type: str, data: bytes, says: str) -> None:
    problem = content_type_problem(content_type, data)
    assert problem is not None
    assert says in problem
    assert content_type.split(";")[0].lower() in problem


# --- in the parser ----------------------------------------------------------------------------------


@functools.cache
def sample_bytes() -> bytes:
    return build_message(sample_monthly_report())


def with_attachments(*attachments: Attachment) -> DocumentMessage:
    return sample_monthly_report().model_copy(update={"attachments": attachments})


def pdf_attachment(i: int, size: int) -> Attachment:
    return Attachment(
        content_id=str(i),
        name=f"phu-luc-{i}.pdf",
        content_type="application/pdf",
        description=f"Phụ lục {i}",
        data=sample_pdf(f"phu luc {i}", size=size),
    )


def replace_payload(document: bytes, index: int, new_base64: str) -> bytes:
    payloads = re.findall(rb"<edXML:ContentTransferEncoded>([^<]*)</", document)
    return document.replace(payloads[index], new_base64.encode(), 1)


def line_of(document: bytes, needle: bytes, occurrence: int = 0) -> int:
    at = -1
    for _ in range(occurrence + 1):
        at = document.index(needle, at + 1)
    return document[:at].count(b"\n") + 1


@pytest.fixture(scope="module")
def three_attachments() -> tuple[bytes, list[int]]:
    attachments = [pdf_attachment(i, size) for i, size in ((1, 30_000), (2, 50_000), (3, 40_000))]
    return build_message(with_attachments(*attachments)), [len(a.data) for a in attachments]


@pytest.mark.parametrize("mode", [ParseMode.STRICT, ParseMode.TOLERANT])
def test_attachments_are_read_under_default_limits(mode: ParseMode, three_attachments: tuple[bytes, list[int]]) -> None:
    document, sizes = three_attachments
    parsed = parse_message(document, mode=mode)
    assert parsed.warnings == ()
    attachments = parsed.message.attachments  # type: ignore[union-attr]
    assert [a.content_id for a in attachments] == ["1", "2", "3"]
    assert [len(a.data) for a in attachments] == sizes
    assert attachments[1].data == sample_pdf("phu luc 2", size=50_000)


def test_max_attachments(three_attachments: tuple[bytes, list[int]]) -> None:
    document, _ = three_attachments
    with pytest.raises(UnsafeXmlError, match="more than 2 attachments") as info:
        parse_message(document, limits=ParseLimits(max_attachments=2))
    assert info.value.location is not None
    assert info.value.location.line == line_of(document, b"<edXML:ContentTransferEncoded>", 2)
    assert len(parse_message(document, limits=ParseLimits(max_attachments=3)).message.attachments) == 3  # type: ignore[union-attr]


def test_max_total_attachment_bytes(three_attachments: tuple[bytes, list[int]]) -> None:
    document, sizes = three_attachments
    total = sum(sizes)
    with pytest.raises(AttachmentError, match=f"total more than the limit of {total - 1} bytes") as info:
        parse_message(document, limits=ParseLimits(max_total_attachment_bytes=total - 1))
    assert info.value.location is not None
    assert info.value.location.line == line_of(document, b"<edXML:ContentTransferEncoded>", 2)
    assert parse_message(document, limits=ParseLimits(max_total_attachment_bytes=total)).message


def test_max_attachment_bytes(three_attachments: tuple[bytes, list[int]]) -> None:
    document, sizes = three_attachments
    limit = max(sizes) - 1
    with pytest.raises(AttachmentError, match=f"(limit of|the limit is) {limit}( bytes)?$") as info:
        parse_message(document, limits=ParseLimits(max_attachment_bytes=limit))
    assert info.value.location is not None
    assert info.value.location.line == line_of(document, b"<edXML:ContentTransferEncoded>", 1)  # the 50 kB one
    assert info.value.location.path.endswith("/AttachmentEncoded/Attachment[2]/ContentTransferEncoded")
    assert parse_message(document, limits=ParseLimits(max_attachment_bytes=max(sizes))).message


def test_max_compression_ratio_through_parse_limits() -> None:
    table = XML_BYTES * 2000  # very repetitive: compresses far beyond 50:1
    xml = Attachment(content_id="1", name="bieu-mau.xml", content_type="application/xml", data=table)
    document = build_message(with_attachments(xml))
    with pytest.raises(AttachmentError, match="compression ratio"):
        parse_message(document, limits=ParseLimits(max_compression_ratio=50))
    assert parse_message(document, limits=ParseLimits(max_compression_ratio=100_000)).message


def test_a_zip_bomb_inside_a_message_is_refused() -> None:
    document = replace_payload(sample_bytes(), 0, b64(ZEROS_10M))
    for mode in ParseMode:
        with pytest.raises(AttachmentError, match="limit") as info:
            parse_message(document, mode=mode, limits=ParseLimits(max_attachment_bytes=MiB))
        assert info.value.location is not None
        assert info.value.location.path.endswith("/ContentTransferEncoded")


def test_decoding_holds_little_more_than_the_file() -> None:
    """Base64 text, ZIP and file of one attachment at a time: peak Python memory is a small multiple of it."""
    size = 4 * MiB
    document = build_message(sample_monthly_report(pdf_size=size))
    parse_message(document)  # warm up (schemas, caches)
    peak, error = peak_allocation(lambda: parse_message(document))
    assert error is None
    assert peak < 5 * size, f"parsing a {size}-byte attachment peaked at {peak} bytes"

    several = build_message(with_attachments(*(pdf_attachment(i, MiB) for i in range(1, 7))))
    peak, error = peak_allocation(lambda: parse_message(several))
    assert error is None
    # Six files are kept; the transient cost is that of one, not of six base64 texts.
    assert peak < 6 * MiB + 5 * MiB, f"parsing six 1 MiB attachments peaked at {peak} bytes"


MISMATCHES = [
    pytest.param("application/pdf", sample_pdf(), b"hello, this is not a PDF", id="pdf-declared"),
    pytest.param("application/xml", XML_BYTES, sample_pdf(), id="xml-declared"),
]


@pytest.mark.parametrize(("content_type", "good", "bad"), MISMATCHES)
def test_content_type_mismatch_strict_and_tolerant(content_type: str, good: bytes, bad: bytes) -> None:
    name = "tep-dinh-kem" + (".pdf" if "pdf" in content_type else ".xml")
    attachment = Attachment(content_id="1", name=name, content_type=content_type, description="x", data=good)
    document = build_message(with_attachments(attachment))
    assert parse_message(document).warnings == ()
    forged = replace_payload(document, 0, encode_attachment(name, content_type, bad))
    with pytest.raises(InvalidEdxmlError, match="declared " + re.escape(content_type)) as info:
        parse_message(forged)
    assert info.value.location is not None
    assert info.value.location.path == "/edXML/AttachmentEncoded/Attachment"
    parsed = parse_message(forged, mode=ParseMode.TOLERANT)
    assert [w.code for w in parsed.warnings] == ["content-type-mismatch"]
    assert parsed.message.attachments[0].data == bad  # type: ignore[union-attr]
    assert parsed.message.attachments[0].content_type == content_type  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("unsafe", "safe"),
    [
        ("../x.pdf", "x.pdf"),
        ("..\\..\\Windows\\x.pdf", "x.pdf"),
        ("/etc/cron.d/x.pdf", "x.pdf"),
        ("bao-cao\u202efdp.exe", "bao-caofdp.exe"),
        (".x.pdf", "x.pdf"),
    ],
)
def test_unsafe_attachment_name_strict_and_tolerant(unsafe: str, safe: str) -> None:
    original = b"bao-cao-ngan-sach-2026-10.pdf"
    document = sample_bytes()
    assert document.count(original + b"</") == 2  # manifest Reference and AttachmentEncoded/Attachment
    edited = document.replace(original + b"</", unsafe.encode() + b"</")
    with pytest.raises(InvalidEdxmlError) as info:
        parse_message(edited)
    names_problem = [p for p in info.value.problems if "unsafe" in p[1]]
    assert names_problem, info.value.problems
    where = names_problem[0][0]
    assert where is not None
    assert where.path == "/edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference/AttachmentName"
    assert where.line == line_of(edited, unsafe.encode())
    parsed = parse_message(edited, mode=ParseMode.TOLERANT)
    assert "unsafe-attachment-name" in [w.code for w in parsed.warnings]
    assert parsed.message.attachments[0].name == safe  # type: ignore[union-attr]


def test_zip_member_name_does_not_leak_into_the_model() -> None:
    """The ZIP's own member name is never used: a path there cannot reach the file system via the model."""
    document = replace_payload(
        sample_bytes(), 0, encode_attachment("../../../etc/passwd", "application/pdf", sample_pdf())
    )
    for mode in ParseMode:
        parsed = parse_message(document, mode=mode)
        assert parsed.message.attachments[0].name == "bao-cao-ngan-sach-2026-10.pdf"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("report.pdf:hidden-stream", "report.pdf"),  # NTFS alternate data stream
        ("C:report.pdf", "report.pdf"),  # drive-relative Windows path
        ("x.pdf.", "x.pdf"),  # Windows drops the trailing dot
        ("x.pdf . ", "x.pdf"),
        ("CON", "_CON"),  # reserved device names on Windows
        ("nul.txt", "_nul.txt"),
        ("COM1.pdf", "_COM1.pdf"),
        ("CONTRACT.pdf", "CONTRACT.pdf"),  # only the exact device names are reserved
    ],
)
def test_windows_hazards_in_names(raw: str, safe: str) -> None:
    assert sanitize_attachment_name(raw) == safe
