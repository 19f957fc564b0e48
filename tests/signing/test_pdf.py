"""PAdES signatures on PDFs: the three roles, independent verification by poppler, and changes after signing."""

from __future__ import annotations

import http.server
import io
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from node.samples import sample_pdf
from signing.errors import SignError, TimestampError
from signing.keys import load_pem
from signing.pdf import (
    COPY_BOX,
    SIGNER_BOX,
    PdfSigningKey,
    PdfSignOptions,
    SignatureRole,
    seal_box,
    sign_pdf,
    verify_pdf,
    verify_pdf_document,
)
from signing.report import Indication, SubIndication
from signing.timestamps import HttpTimestamper
from signing.trust import TrustStore
from tests.conftest import require
from tests.signing.fixtures import CaFixture


@pytest.fixture(scope="module")
def key(test_ca: CaFixture) -> PdfSigningKey:
    return PdfSigningKey(load_pem(test_ca.rsa.key_path, test_ca.rsa.cert_path, test_ca.chain_path))


@pytest.fixture(scope="module")
def trust(test_ca: CaFixture) -> TrustStore:
    return TrustStore(roots=(test_ca.root,), allow_fetching=False)


@pytest.fixture(scope="module")
def report_pdf(key: PdfSigningKey) -> bytes:
    """A report signed as on paper: the signer, then the organisation's seal."""
    pdf = sample_pdf("Bao cao thang 10/2026", size=50_000)
    signed = sign_pdf(pdf, key, PdfSignOptions(role=SignatureRole.SIGNER))
    return sign_pdf(
        signed, key, PdfSignOptions(role=SignatureRole.ORGANISATION, organisation_name="Sở Tài chính tỉnh Nghệ An")
    )


def test_signer_then_organisation_both_pass(report_pdf: bytes, trust: TrustStore) -> None:
    reports = verify_pdf("bao-cao.pdf", report_pdf, trust)
    assert [r.role for r in reports] == ["signer", "organisation"]
    assert all(r.indication is Indication.TOTAL_PASSED for r in reports), [r.reasons for r in reports]
    signer, seal = reports
    # the signer's signature was followed by one revision: the seal, which is allowed
    assert [(rev.modification_level, rev.allowed) for rev in signer.revisions_after] == [("SIGNATURE", True)]
    assert seal.revisions_after == ()
    assert signer.signer is not None and signer.signer.organ_code == "000.01.41.H41"
    assert verify_pdf_document(report_pdf, trust).exit_code == 0


def test_electronic_copy_signature(report_pdf: bytes, key: PdfSigningKey, trust: TrustStore) -> None:
    copy = sign_pdf(report_pdf, key, PdfSignOptions(role=SignatureRole.COPY))
    reports = verify_pdf("copy.pdf", copy, trust)
    assert [r.role for r in reports] == ["signer", "organisation", "copy"]
    assert all(r.indication is Indication.TOTAL_PASSED for r in reports)


def test_seal_overlaps_the_left_third_of_the_signers_image() -> None:
    x0, y0, x1, y1 = SIGNER_BOX
    sx0, sy0, sx1, sy1 = seal_box()
    third = x0 + (x1 - x0) / 3
    # the seal image is centred in its box; its right edge is at the signer's first third
    seal_image_right = (sx0 + sx1) / 2 + 50
    assert seal_image_right == pytest.approx(third)
    assert sy1 > y0 and sy0 < y1  # vertically overlapping


def _render(pdf: bytes, tmp_path: Path) -> Image.Image:
    require(shutil.which("pdftoppm") is not None, "pdftoppm (Debian package poppler-utils) is not installed")
    (tmp_path / "in.pdf").write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "72", "-png", "-singlefile", str(tmp_path / "in.pdf"), str(tmp_path / "page")], check=True
    )
    return Image.open(tmp_path / "page.png").convert("RGB")


def test_stamps_are_visible_where_they_belong(report_pdf: bytes, key: PdfSigningKey, tmp_path: Path) -> None:
    page = _render(sign_pdf(report_pdf, key, PdfSignOptions(role=SignatureRole.COPY)), tmp_path)
    height = page.height  # 72 dpi: one pixel per point, y grows downwards

    def pixels(box: tuple[float, float, float, float], test) -> int:  # type: ignore[no-untyped-def]
        x0, y0, x1, y1 = (int(v) for v in box)
        region = page.crop((x0, height - y1, x1, height - y0))
        return sum(1 for p in region.get_flattened_data() if test(p))

    red = lambda p: p[0] > 150 and p[1] < 90 and p[2] < 90  # noqa: E731
    blue = lambda p: p[2] > 120 and p[0] < 90  # noqa: E731
    dark = lambda p: sum(p) < 250  # noqa: E731
    x0, y0, x1, y1 = SIGNER_BOX
    left_third = (x0, y0, x0 + (x1 - x0) / 3, y1)
    assert pixels(left_third, red) > 30, "the red seal covers the left third of the signature"
    assert pixels(SIGNER_BOX, blue) > 100, "the handwritten signature image is drawn"
    assert pixels((x0 + 2 * (x1 - x0) / 3, y0, x1, y1), red) == 0, "the seal stays on the left"
    assert pixels(COPY_BOX, dark) > 50, "the copy text is at the top right of page 1"


def _pdfsig(pdf: bytes, nss: Path, tmp_path: Path, name: str) -> str:
    (tmp_path / name).write_bytes(pdf)
    result = subprocess.run(
        ["pdfsig", "-nssdir", f"sql:{nss}", str(tmp_path / name)], capture_output=True, text=True, check=False
    )
    return result.stdout


def _nss_db(path: Path, *certs: tuple[str, Path, str]) -> Path:
    path.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{path}", "--empty-password"], check=True)
    for nickname, cert, trust_flags in certs:
        subprocess.run(
            ["certutil", "-A", "-d", f"sql:{path}", "-n", nickname, "-t", trust_flags, "-i", str(cert)], check=True
        )
    return path


def test_pdfsig_trusts_our_signatures(
    report_pdf: bytes, key: PdfSigningKey, test_ca: CaFixture, tmp_path: Path
) -> None:
    require(
        shutil.which("pdfsig") is not None and shutil.which("certutil") is not None,
        "pdfsig (poppler-utils) and certutil (libnss3-tools) are needed",
    )
    # Only the root is trusted: the chain must come from the certificates we embed.
    root_only = _nss_db(tmp_path / "root-only", ("root", test_ca.root_path, "CT,C,C"))
    one = sign_pdf(sample_pdf("one signature"), key)
    out = _pdfsig(one, root_only, tmp_path, "one.pdf")
    assert "Signature is Valid." in out and "Certificate is Trusted." in out, out

    # Two signatures by one certificate: poppler 22.12 fails to re-import the same temporary certificates
    # for the second one ("Unknown issue with Certificate"), so the recipient's database knows them, as a
    # recipient's would from the agency registry.
    known = _nss_db(
        tmp_path / "known",
        ("root", test_ca.root_path, "CT,C,C"),
        ("issuing", test_ca.chain_path, ",,"),
        ("agency", test_ca.rsa.cert_path, ",,"),
    )
    out = _pdfsig(report_pdf, known, tmp_path, "report.pdf")
    assert out.count("Signature is Valid.") == 2, out
    assert out.count("Certificate is Trusted.") == 2, out

    # and poppler notices a changed byte inside what was signed
    tampered = bytearray(report_pdf)
    tampered[report_pdf.index(b"Bao cao thang")] = ord("X")
    assert "Signature is Valid." not in _pdfsig(bytes(tampered), known, tmp_path, "tampered.pdf")


def _change_content_after_signing(pdf: bytes) -> bytes:
    """An incremental update that replaces the text of page 1: what a forger would do."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    stream = generic.StreamObject(stream_data=b"BT /F1 18 Tf 72 760 Td (Forged figures) Tj ET")
    page["/Contents"] = writer.add_object(stream)
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_content_changed_after_the_last_signature_never_passes(report_pdf: bytes, trust: TrustStore) -> None:
    forged = _change_content_after_signing(report_pdf)
    reports = verify_pdf("forged.pdf", forged, trust)
    assert reports and all(r.indication is not Indication.TOTAL_PASSED for r in reports)
    seal = reports[-1]
    assert seal.sub_indication is SubIndication.MODIFIED_AFTER_SIGNING
    assert seal.revisions_after and not seal.revisions_after[-1].allowed
    assert verify_pdf_document(forged, trust).exit_code == 1


def test_changed_signed_byte_is_a_hash_failure(report_pdf: bytes, trust: TrustStore) -> None:
    tampered = bytearray(report_pdf)
    tampered[report_pdf.index(b"Bao cao thang")] = ord("X")
    reports = verify_pdf("t.pdf", bytes(tampered), trust)
    assert all(r.indication is Indication.TOTAL_FAILED for r in reports)
    assert {r.sub_indication for r in reports} == {SubIndication.HASH_FAILURE}


def test_untrusted_signer_is_indeterminate(report_pdf: bytes) -> None:
    from tests.signing.pki_helpers import MiniPki

    stranger = TrustStore(roots=(MiniPki.create("Other Root").root,), allow_fetching=False)
    reports = verify_pdf("x.pdf", report_pdf, stranger)
    assert {r.indication for r in reports} == {Indication.INDETERMINATE}
    assert {r.sub_indication for r in reports} == {SubIndication.NO_CERTIFICATE_CHAIN_FOUND}


def test_unsigned_and_broken_pdfs(trust: TrustStore) -> None:
    assert verify_pdf("plain.pdf", sample_pdf(), trust) == []
    assert verify_pdf_document(sample_pdf(), trust).exit_code == 1  # no signature at all is not a pass
    (broken,) = verify_pdf("broken.pdf", b"%PDF-1.7\nnot really", trust)
    assert broken.sub_indication is SubIndication.FORMAT_FAILURE


def test_cannot_sign_what_is_not_a_pdf(key: PdfSigningKey) -> None:
    with pytest.raises(SignError, match="PDF") as raised:
        sign_pdf(b"hello", key)
    assert not isinstance(raised.value, TimestampError)


def test_room_for_the_signature_shrinks_to_what_the_key_needs(test_ca: CaFixture, trust: TrustStore) -> None:
    """The first signature reserves generously; later ones what the key's CMS needed, plus a margin."""
    fresh = PdfSigningKey(load_pem(test_ca.rsa.key_path, test_ca.rsa.cert_path, test_ca.chain_path))
    pdf = sample_pdf("room", size=20_000)
    options = PdfSignOptions(role=SignatureRole.ORGANISATION)
    first = sign_pdf(pdf, fresh, options)
    learned = fresh.cms_sizes[(False, False)]
    second = sign_pdf(pdf, fresh, options)
    assert len(second) < len(first) - 4000
    assert fresh.cms_sizes[(False, False)] == learned
    for signed in (first, second):
        assert [r.indication for r in verify_pdf("room.pdf", signed, trust)] == [Indication.TOTAL_PASSED]


def test_a_room_too_small_is_retried_with_the_generous_one(test_ca: CaFixture, trust: TrustStore) -> None:
    fresh = PdfSigningKey(load_pem(test_ca.rsa.key_path, test_ca.rsa.cert_path, test_ca.chain_path))
    fresh.cms_sizes[(False, False)] = 10  # as if the CMS had been tiny: the room will not hold the real one
    signed = sign_pdf(sample_pdf("retry", size=5_000), fresh, PdfSignOptions(role=SignatureRole.ORGANISATION))
    assert [r.indication for r in verify_pdf("retry.pdf", signed, trust)] == [Indication.TOTAL_PASSED]
    assert fresh.cms_sizes[(False, False)] > 1000  # learned the real size


def test_the_room_a_cms_used_is_read_from_its_der_length_even_when_it_ends_in_zeros() -> None:
    from signing.pdf import _cms_size

    # SEQUENCE { INTEGER 0x0000 } is six bytes, its last two zero, then the unused room
    assert _cms_size(b"<< /Contents <300402020000" + b"0" * 40 + b"> >>") == 6
    long_form = b"308203e8" + b"ab" * 1000 + b"0" * 100  # SEQUENCE of 1000 bytes, two length bytes
    assert _cms_size(b"/Contents <" + long_form + b">") == 1004
    assert _cms_size(b"/Contents <not hex>") is None


# --- a timestamp authority that fails ------------------------------------------------------------------


@pytest.fixture
def refusing_tsa() -> Iterator[str]:
    """A TSA address on a port bound but not listening: every connection is refused (and no one else can take
    the port while the test runs)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}/tsa"


def _tsa_answering(status: int, content_type: str, body: bytes) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/tsa"
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def failing_tsa() -> Iterator[str]:
    """A TSA whose web server answers every request with an error page."""
    yield from _tsa_answering(500, "text/html", b"<h1>Internal Server Error</h1>")


@pytest.fixture
def garbling_tsa() -> Iterator[str]:
    """A TSA that labels its answer as a timestamp reply, but the bytes are not one."""
    yield from _tsa_answering(200, "application/timestamp-reply", b"garbage")


def _seal_with(key: PdfSigningKey, url: str) -> bytes:
    options = PdfSignOptions(role=SignatureRole.ORGANISATION)
    return sign_pdf(sample_pdf("tsa"), key, options, timestamper=HttpTimestamper(url, timeout=5).pyhanko)


def test_a_timestamp_authority_refusing_connections_is_a_sign_error_naming_it(
    key: PdfSigningKey, refusing_tsa: str
) -> None:
    with pytest.raises(TimestampError) as raised:  # a SignError, told apart from a PDF that cannot be signed
        _seal_with(key, refusing_tsa)
    assert str(raised.value).startswith(f"timestamp authority {refusing_tsa} did not answer: ")
    assert "Connection refused" in str(raised.value)


def test_a_timestamp_authority_answering_500_is_a_sign_error_naming_it(key: PdfSigningKey, failing_tsa: str) -> None:
    with pytest.raises(TimestampError) as raised:  # a SignError, told apart from a PDF that cannot be signed
        _seal_with(key, failing_tsa)
    assert str(raised.value) == (
        f"timestamp authority {failing_tsa} did not answer: "
        "HTTP 500 Internal Server Error with Content-Type text/html, not a timestamp reply"
    )


def test_a_timestamp_authority_answering_garbage_is_a_sign_error_naming_it(
    key: PdfSigningKey, garbling_tsa: str
) -> None:
    with pytest.raises(TimestampError) as raised:  # a SignError, told apart from a PDF that cannot be signed
        _seal_with(key, garbling_tsa)
    assert str(raised.value).startswith(f"timestamp authority {garbling_tsa} did not answer: an unreadable timestamp")


def _with_media_box(pdf: bytes, width: int, height: int) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    page[generic.NameObject("/MediaBox")] = generic.ArrayObject(
        [generic.NumberObject(v) for v in (0, 0, width, height)]
    )
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(("width", "height"), [(595, 842), (612, 792), (842, 595)])
def test_copy_stamp_is_times_10_at_the_top_right_of_page_one_whatever_its_size(
    key: PdfSigningKey, width: int, height: int
) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader

    name = "Văn phòng Ủy ban nhân dân tỉnh Nghệ An"  # a long name: the stamp grows, its text never shrinks
    signed = sign_pdf(
        _with_media_box(sample_pdf("copy"), width, height),
        key,
        PdfSignOptions(role=SignatureRole.COPY, organisation_name=name),
    )
    page = PdfFileReader(io.BytesIO(signed)).root["/Pages"]["/Kids"][0].get_object()
    (widget,) = [a.get_object() for a in page["/Annots"]]
    x0, y0, x1, y1 = (float(v) for v in widget["/Rect"])
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, (widget["/Rect"], width, height)
    assert width - x1 <= 30 and height - y1 <= 30, "top right"
    appearance = widget["/AP"]["/N"].get_object()
    stream = appearance.data
    assert b"/F1 10 Tf" in stream
    # the text is drawn at its natural size: no scaling between the stamp and its text
    scales = [float(m.split()[0]) for m in re.findall(rb"[-\d.]+ 0 0 [-\d.]+ [-\d.]+ [-\d.]+ cm", stream)]
    assert scales and all(s == pytest.approx(1.0) for s in scales), stream[:300]
    font = appearance["/Resources"]["/Font"]["/F1"].get_object()
    assert any(serif in str(font["/BaseFont"]) for serif in ("TimesNewRoman", "LiberationSerif")), font["/BaseFont"]
    assert "/XObject" not in appearance["/Resources"] or not any(
        x.get_object().get("/Subtype") == "/Image" for x in appearance["/Resources"]["/XObject"].values()
    ), "no image on a copy"
