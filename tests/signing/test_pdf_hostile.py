"""Hostile PDFs before the recipient's verifier: each gives failed reports with a reason, soon, in bounded memory.

A sender (or anyone who can put an envelope before a node) chooses every byte of an attached PDF. Each
PDF here is a few lines of code; what it did before the bounds of ``signing._private.pdf_limits`` and the
signature cap of ``signing.pdf`` is said with it.
"""

from __future__ import annotations

import re
import time
import zlib

import pytest

from node.samples import sample_pdf
from signing import pdf as pdf_module
from signing._private.pdf_limits import PdfLimits
from signing.keys import load_pem
from signing.pdf import MAX_PDF_SIGNATURES, PdfSigningKey, PdfSignOptions, SignatureRole, sign_pdf, verify_pdf
from signing.report import Indication, SignatureReport, SubIndication
from signing.trust import TrustStore
from tests.signing.fixtures import CaFixture

# Generous for a loaded CI machine: every case below takes well under a second where it is refused.
QUICK = 5.0


@pytest.fixture(scope="module")
def trust(test_ca: CaFixture) -> TrustStore:
    return TrustStore(roots=(test_ca.root,), allow_fetching=False)


@pytest.fixture(scope="module")
def signed(test_ca: CaFixture) -> bytes:
    key = PdfSigningKey(load_pem(test_ca.rsa.key_path, test_ca.rsa.cert_path, test_ca.chain_path))
    return sign_pdf(sample_pdf("Bao cao"), key, PdfSignOptions(role=SignatureRole.SIGNER))


def _pdf(*objects: bytes, body_end: bytes = b"") -> bytes:
    """A classic PDF with these objects (numbered from 1; 1 is the catalog), its xref table and trailer."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    out += body_end
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


PAGES = b"<< /Type /Pages /Kids [] /Count 0 >>"


def _with_signature(value: bytes) -> bytes:
    """A PDF whose one signature field has ``value`` as its /V."""
    return _pdf(
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [3 0 R] >> >>",
        PAGES,
        b"<< /FT /Sig /T (S) /V 4 0 R >>",
        value,
    )


def _startxref(data: bytes) -> int:
    return int(data[data.rindex(b"startxref") + 9 :].split()[0])


def _update(base: bytes, objects: dict[int, bytes]) -> bytes:
    """``base`` with an incremental update (re)defining ``objects``."""
    out = bytearray(base)
    offsets = {}
    for number, body in objects.items():
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n" + b"".join(b"%d 1\n%010d 00000 n \n" % (n, offsets[n]) for n in sorted(offsets))
    size = max(*offsets, *(int(m) for m in re.findall(rb"/Size (\d+)", base))) + 1
    out += b"trailer\n<< /Size %d /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (size, _startxref(base), xref)
    return bytes(out)


def _catalog(data: bytes) -> bytes:
    """The body of the latest object 1 (the catalog) of ``data``."""
    start = data.rindex(b"\n1 0 obj") + len(b"\n1 0 obj")
    return data[start : data.index(b"endobj", start)].strip()


def _next_number(data: bytes) -> int:
    return max(int(n) for n in re.findall(rb"\n(\d+) 0 obj", data)) + 1


def _verify(data: bytes, trust: TrustStore) -> list[SignatureReport]:
    started = time.perf_counter()
    reports = verify_pdf("hostile.pdf", data, trust)
    assert time.perf_counter() - started < QUICK
    return reports


def _refused(reports: list[SignatureReport], *words: str) -> None:
    """Not a pass, and the reason says what was wrong."""
    assert reports, "a hostile PDF must not look unsigned"
    assert all(r.indication is not Indication.TOTAL_PASSED for r in reports)
    reasons = " ".join(r for report in reports for r in report.reasons)
    for word in words:
        assert word in reasons, reasons


DEEP = 5_000


@pytest.mark.parametrize("nested", [b"[" * DEEP + b"]" * DEEP, b"<< /A " * DEEP + b">> " * DEEP])
def test_nesting_too_deep_is_refused_not_a_recursion_error(nested: bytes, signed: bytes, trust: TrustStore) -> None:
    # before: RecursionError out of verify_pdf, so the delivery failed again and again and was never answered
    catalog = _catalog(signed)
    in_catalog = _update(signed, {1: catalog[:-2] + b" /Foo " + nested + b" >>"})
    _refused(_verify(in_catalog, trust), "nests")
    unsigned = _pdf(
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [3 0 R] >> /Foo " + nested + b" >>",
        PAGES,
        b"<< /FT /Sig >>",
    )
    (report,) = _verify(unsigned, trust)
    assert report.sub_indication is SubIndication.FORMAT_FAILURE
    assert "nests" in report.reasons[0]


def test_a_malformed_signature_dictionary_is_a_format_failure(trust: TrustStore) -> None:
    # before: AttributeError ('ArrayObject' object has no attribute 'get') out of verify_pdf
    (report,) = _verify(_with_signature(b"[1 2 3]"), trust)
    assert report.indication is Indication.TOTAL_FAILED
    assert report.sub_indication is SubIndication.FORMAT_FAILURE
    assert report.reasons and "ArrayObject" in report.reasons[0]


@pytest.mark.parametrize(
    "value",
    [
        b"<< /Type /Sig /SubFilter /adbe.pkcs7.detached /ByteRange [0 999999999999 999999999999 5] /Contents <3000> >>",
        b"<< /Type /Sig /SubFilter /adbe.pkcs7.detached /ByteRange [-100 50 10 -5] /Contents <3000> >>",
        b"<< /Type /Sig /SubFilter /adbe.pkcs7.detached /ByteRange [(a) /b 1.5 []] /Contents <3000> >>",
        b"<< /Type /Sig /SubFilter /adbe.pkcs7.detached /ByteRange [0 10 20 5] /Contents [1 2] >>",
        b"<< /Type /Sig /SubFilter /adbe.pkcs7.detached /ByteRange [0 10 20 5] /Contents <3082ffff0000> >>",
    ],
    ids=[
        "byterange-past-the-end",
        "byterange-negative",
        "byterange-not-numbers",
        "contents-not-a-string",
        "cms-truncated",
    ],
)
def test_signature_dictionaries_pointing_anywhere_are_refused(value: bytes, trust: TrustStore) -> None:
    (report,) = _verify(_with_signature(value), trust)
    assert report.indication is Indication.TOTAL_FAILED
    assert report.reasons


def test_a_cross_reference_stream_declaring_billions_of_entries_is_refused(trust: TrustStore) -> None:
    # before: a 300-byte file took 40 s and 3 GB, then MemoryError (non-strict reading defaults missing rows)
    catalog = b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n" + PAGES + b"\nendobj\n"
    head = b"%PDF-1.7\n" + catalog
    rows = zlib.compress(b"\0" * 28)
    xref = (
        b"3 0 obj\n<< /Type /XRef /Size 4 /W [1 4 2] /Index [0 2000000000] /Root 1 0 R /Filter /FlateDecode "
        b"/Length %d >>\nstream\n%s\nendstream\nendobj\n" % (len(rows), rows)
    )
    data = head + xref + b"startxref\n%d\n%%%%EOF\n" % len(head)
    (report,) = _verify(data, trust)
    assert report.sub_indication is SubIndication.FORMAT_FAILURE
    assert "cross-reference" in report.reasons[0]


def test_a_reference_loop_is_refused(trust: TrustStore) -> None:
    plain = _pdf(b"<< /Type /Catalog /Pages 2 0 R >>", PAGES)
    looping = plain.replace(b"/Root 1 0 R", b"/Root 1 0 R /Prev %d" % _startxref(plain))
    (report,) = _verify(looping, trust)
    assert "loop" in report.reasons[0]


def test_parsing_is_bounded(trust: TrustStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # before: 14 MB of small field dictionaries took 20 s and 1.3 GB; 60 MB of numbers ran out of 3 GB
    fields = b"[" + b"<< /FT /Tx /T (f) /V (x) >> " * 2_000 + b"]"
    many = _pdf(b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields " + fields + b" >> >>", PAGES)
    monkeypatch.setattr(pdf_module, "PDF_LIMITS", PdfLimits(max_objects=1_000))
    (report,) = _verify(many, trust)
    assert "more than 1000 objects" in report.reasons[0]


def test_the_default_object_budget_is_reached_in_seconds(trust: TrustStore) -> None:
    numbers = b"[" + b"1 " * (PdfLimits().max_objects + 10) + b"]"
    (report,) = _verify(_pdf(b"<< /Type /Catalog /Pages 2 0 R /Foo " + numbers + b" >>", PAGES), trust)
    assert "objects" in report.reasons[0]


def test_objects_looked_up_in_a_long_object_stream_header_are_bounded(
    trust: TrustStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # before: each of 2,000 fields pointing into one stream whose header lists 400,000 pairs, none of them
    # theirs, made pyHanko read the whole header again (1.3 s a field: a 28 KB file kept a node 40 minutes)
    pairs, fields = 5_000, 200
    header = b"999999 0 " * pairs
    packed = zlib.compress(header + b"null")
    refs = b" ".join(b"%d 0 R" % (10 + i) for i in range(fields))
    head = bytearray(b"%PDF-1.7\n")
    offsets = [len(head)]
    head += b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [%s] >> >>\nendobj\n" % refs
    offsets.append(len(head))
    head += b"2 0 obj\n%s\nendobj\n" % PAGES
    offsets.append(len(head))
    head += (
        b"4 0 obj\n<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream\nendobj\n"
        % (
            pairs,
            len(header),
            len(packed),
            packed,
        )
    )
    xref = len(head)

    def row(kind: int, a: int, b: int) -> bytes:
        return bytes([kind]) + a.to_bytes(4, "big") + b.to_bytes(2, "big")

    rows = row(0, 0, 65535) + row(1, offsets[0], 0) + row(1, offsets[1], 0) + row(1, xref, 0) + row(1, offsets[2], 0)
    rows += row(0, 0, 0) * 5 + b"".join(row(2, 4, i) for i in range(fields))
    packed_rows = zlib.compress(rows)
    data = bytes(head) + (
        b"3 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Filter /FlateDecode /Length %d >>\nstream\n"
        b"%s\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % (10 + fields, len(packed_rows), packed_rows, xref)
    )
    monkeypatch.setattr(pdf_module, "PDF_LIMITS", PdfLimits(max_header_pairs=50_000))
    (report,) = _verify(data, trust)
    assert "more than 50000 header entries" in report.reasons[0]


def test_thousands_of_signature_fields_are_refused_before_any_is_verified(signed: bytes, trust: TrustStore) -> None:
    # before: 3,000 fields sharing one signature value (a 430 KB file) took 157 s and 3.1 GB
    value = re.search(rb"/FT /Sig.*?/V (\d+) 0 R", signed, re.S)
    assert value is not None
    first = _next_number(signed)
    fields = {
        first + i: b"<< /FT /Sig /T (F%d) /V %s 0 R >>" % (i, value.group(1)) for i in range(MAX_PDF_SIGNATURES * 20)
    }
    refs = b" ".join(b"%d 0 R" % n for n in fields)
    catalog = re.sub(rb"/AcroForm \d+ 0 R", b"/AcroForm << /Fields [" + refs + b"] /SigFlags 3 >>", _catalog(signed))
    assert catalog != _catalog(signed)
    (report,) = _verify(_update(signed, {1: catalog, **fields}), trust)
    assert report.sub_indication is SubIndication.FORMAT_FAILURE
    assert f"more than {MAX_PDF_SIGNATURES} signatures" in report.reasons[0]


def test_a_real_signature_still_passes(signed: bytes, trust: TrustStore) -> None:
    (report,) = _verify(signed, trust)
    assert report.indication is Indication.TOTAL_PASSED, report.reasons


def test_the_pdfs_of_one_envelope_share_one_reading_budget(
    signed: bytes, trust: TrustStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each PDF under its own bounds could still add up: an envelope of 200 attachments, each just under them."""
    from signing.pdf import one_reading_budget

    monkeypatch.setattr(pdf_module, "PDF_LIMITS", PdfLimits(max_objects=200))
    alone = [verify_pdf(f"copy-{n}.pdf", signed, trust) for n in range(6)]
    assert all(r.indication is Indication.TOTAL_PASSED for reports in alone for r in reports)  # each fits
    with one_reading_budget():
        together = [verify_pdf(f"copy-{n}.pdf", signed, trust) for n in range(6)]
    assert together[0][0].indication is Indication.TOTAL_PASSED
    assert "more than 200 objects" in together[-1][0].reasons[0]  # the envelope's budget ran out


def test_the_signatures_of_one_envelope_are_counted_together(
    signed: bytes, trust: TrustStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signing.pdf import one_reading_budget

    monkeypatch.setattr(pdf_module, "PDF_LIMITS", PdfLimits(max_signatures=3))
    with one_reading_budget():
        reports = [verify_pdf(f"copy-{n}.pdf", signed, trust)[0] for n in range(4)]
    assert [r.indication for r in reports[:3]] == [Indication.TOTAL_PASSED] * 3
    assert "more than 3 PDF signatures" in reports[3].reasons[0]
