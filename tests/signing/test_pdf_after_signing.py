"""What happened to a PDF after a signature, and the evidence a signature carries, judged as documented.

Real pyHanko on both sides: documents signed with ``signing.pdf`` (or pyHanko itself, for what our signer
never makes: a certification signature, a timestamp over the wrong bytes), changed afterwards with pyHanko's
incremental writer the way another tool (or a forger) would, and verified with ``signing.pdf``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import NameObject as N
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

from node.samples import sample_pdf
from signing.errors import SignError
from signing.keys import load_pem
from signing.pdf import PdfSigningKey, PdfSignOptions, SignatureRole, sign_pdf, verify_pdf
from signing.report import Indication, SubIndication
from signing.trust import TrustStore, to_asn1
from tests.signing.fixtures import CaFixture, _certificate, _name, write_certs, write_key


@pytest.fixture(scope="module")
def key(test_ca: CaFixture) -> PdfSigningKey:
    return PdfSigningKey(load_pem(test_ca.rsa.key_path, test_ca.rsa.cert_path, test_ca.chain_path))


@pytest.fixture(scope="module")
def trust(test_ca: CaFixture) -> TrustStore:
    return TrustStore(roots=(test_ca.root,), allow_fetching=False)


def _write(writer: IncrementalPdfFileWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _with_text_field(pdf: bytes) -> bytes:
    """A form with one text field, "Amount" = 100, on page 1 (before anything is signed)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page_ref = writer.root["/Pages"]["/Kids"][0]
    page = page_ref.get_object()
    widget = generic.DictionaryObject(
        {
            N("/Type"): N("/Annot"),
            N("/Subtype"): N("/Widget"),
            N("/FT"): N("/Tx"),
            N("/T"): generic.TextStringObject("Amount"),
            N("/V"): generic.TextStringObject("100"),
            N("/F"): generic.NumberObject(4),
            N("/P"): page_ref,
            N("/Rect"): generic.ArrayObject([generic.NumberObject(v) for v in (72, 600, 272, 620)]),
        }
    )
    ref = writer.add_object(widget)
    page[N("/Annots")] = generic.ArrayObject([ref])
    writer.update_container(page)
    writer.root[N("/AcroForm")] = generic.DictionaryObject({N("/Fields"): generic.ArrayObject([ref])})
    writer.update_root()
    return _write(writer)


def _fill_amount(pdf: bytes, value: str) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    ref = writer.root["/AcroForm"]["/Fields"].raw_get(0)
    widget = ref.get_object()
    widget[N("/V")] = generic.TextStringObject(value)
    writer.mark_update(ref)
    return _write(writer)


def _add_annotation(pdf: bytes) -> bytes:
    """A FreeText annotation on page 1, as a viewer's "add comment" writes it."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page_ref = writer.root["/Pages"]["/Kids"][0]
    page = page_ref.get_object()
    note = generic.DictionaryObject(
        {
            N("/Type"): N("/Annot"),
            N("/Subtype"): N("/FreeText"),
            N("/Contents"): generic.TextStringObject("Số tiền: 10 tỷ đồng"),
            N("/DA"): generic.TextStringObject("/Helv 12 Tf 0 g"),
            N("/P"): page_ref,
            N("/Rect"): generic.ArrayObject([generic.NumberObject(v) for v in (72, 500, 372, 530)]),
        }
    )
    annots = page.get("/Annots")
    existing = list(annots.get_object()) if annots is not None else []
    page[N("/Annots")] = generic.ArrayObject([*existing, writer.add_object(note)])
    writer.update_container(page)
    return _write(writer)


def _add_page(pdf: bytes) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    pages = writer.root["/Pages"]
    first = pages["/Kids"][0].get_object()
    content = writer.add_object(generic.StreamObject(stream_data=b"BT /F1 18 Tf 72 760 Td (Annex) Tj ET"))
    page = generic.DictionaryObject(
        {
            N("/Type"): N("/Page"),
            N("/Parent"): writer.root.raw_get("/Pages"),
            N("/MediaBox"): first["/MediaBox"],
            N("/Contents"): content,
            N("/Resources"): first["/Resources"],
        }
    )
    pages["/Kids"].append(writer.add_object(page))
    pages[N("/Count")] = generic.NumberObject(int(pages["/Count"]) + 1)
    writer.update_container(pages)
    return _write(writer)


def _seal(pdf: bytes, key: PdfSigningKey) -> bytes:
    return sign_pdf(pdf, key, PdfSignOptions(role=SignatureRole.ORGANISATION, organisation_name="Sở Tài chính"))


# --- changes after signing --------------------------------------------------------------------------------


def test_an_annotation_added_after_signing_is_a_modification(key: PdfSigningKey, trust: TrustStore) -> None:
    changed = _add_annotation(_seal(sample_pdf("annotated"), key))
    (report,) = verify_pdf("annotated.pdf", changed, trust)
    assert report.indication is Indication.TOTAL_FAILED, report.reasons
    assert report.sub_indication is SubIndication.MODIFIED_AFTER_SIGNING
    (revision,) = report.revisions_after
    assert not revision.allowed
    assert revision.modification_level in ("ANNOTATIONS", "OTHER")
    assert "annotation /FreeText" in revision.description


def test_a_form_field_filled_after_signing_is_a_modification(key: PdfSigningKey, trust: TrustStore) -> None:
    signed = _seal(_with_text_field(sample_pdf("form")), key)
    (before,) = verify_pdf("form.pdf", signed, trust)
    assert before.indication is Indication.TOTAL_PASSED, before.reasons
    (report,) = verify_pdf("form.pdf", _fill_amount(signed, "100000000"), trust)
    assert report.indication is Indication.TOTAL_FAILED, report.reasons
    assert report.sub_indication is SubIndication.MODIFIED_AFTER_SIGNING
    assert any("Amount" in reason for reason in report.reasons), report.reasons
    (revision,) = report.revisions_after
    assert not revision.allowed
    assert "form field Amount" in revision.description


def test_a_later_signature_on_a_form_is_still_allowed(key: PdfSigningKey, trust: TrustStore) -> None:
    signed = _seal(_seal(_with_text_field(sample_pdf("form twice")), key), key)
    first, second = verify_pdf("form.pdf", signed, trust)
    assert first.indication is second.indication is Indication.TOTAL_PASSED, first.reasons
    (revision,) = first.revisions_after
    assert revision.allowed and revision.modification_level == "SIGNATURE"
    assert "signature Organisation2" in revision.description


def test_a_page_added_after_signing_is_a_modification_named_in_the_report(
    key: PdfSigningKey, trust: TrustStore
) -> None:
    (report,) = verify_pdf("paged.pdf", _add_page(_seal(sample_pdf("pages"), key)), trust)
    assert report.sub_indication is SubIndication.MODIFIED_AFTER_SIGNING
    (revision,) = report.revisions_after
    assert not revision.allowed
    assert "page added" in revision.description


def test_the_report_says_which_revisions_a_signature_covers(key: PdfSigningKey, trust: TrustStore) -> None:
    signed = _seal(_seal(sample_pdf("coverage"), key), key)
    first, second = verify_pdf("c.pdf", signed, trust)
    total = 3  # the document, the first signature, the second
    assert first.signed_parts == (f"revisions 1-2 of {total}",)
    assert second.signed_parts == (f"revisions 1-3 of {total} (the whole file)",)


def _certify_no_changes(pdf: bytes, key: PdfSigningKey) -> bytes:
    meta = signers.PdfSignatureMetadata(
        field_name="Certification",
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        certify=True,
        docmdp_permissions=MDPPerm.NO_CHANGES,
    )
    out = signers.PdfSigner(meta, signer=key.signer).sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)))
    return bytes(out.getbuffer())


def test_a_signature_after_a_no_changes_certification_breaks_it(key: PdfSigningKey, trust: TrustStore) -> None:
    certified = _certify_no_changes(sample_pdf("certified"), key)
    (alone,) = verify_pdf("certified.pdf", certified, trust)
    assert alone.indication is Indication.TOTAL_PASSED, alone.reasons
    with pytest.raises(SignError, match="forbids all changes"):  # our signer refuses, as pyHanko does
        _seal(certified, key)

    class CarelessSigner(signers.PdfSigner):  # another tool, which does not read the certification's permissions
        def _enforce_certification_constraints(self, reader: Any) -> None:
            pass

    meta = signers.PdfSignatureMetadata(field_name="Later", subfilter=fields.SigSeedSubFilter.PADES)
    writer = IncrementalPdfFileWriter(io.BytesIO(certified))
    later = bytes(CarelessSigner(meta, signer=key.signer).sign_pdf(writer).getbuffer())
    certification, _ = verify_pdf("certified.pdf", later, trust)
    assert certification.indication is Indication.TOTAL_FAILED
    assert certification.sub_indication is SubIndication.MODIFIED_AFTER_SIGNING
    (revision,) = certification.revisions_after
    assert not revision.allowed, "P=1 allows no change at all, not even a signature"


# --- the evidence in the signature --------------------------------------------------------------------------


def test_a_signing_certificate_without_non_repudiation_is_a_constraints_failure(
    test_ca: CaFixture, trust: TrustStore, tmp_path: Path
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _certificate(
        _name("Sở Tài chính (TLS only)", "000.01.41.H41"),
        private.public_key(),
        test_ca.issuing.subject,
        test_ca.issuing_key,
        ca=False,
    )
    # the same certificate but for key usage: keyEncipherment only
    cert = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, True, False, False, False, False, False, False),
            critical=True,
        )
        .sign(test_ca.issuing_key, hashes.SHA256())
    )
    wrong = PdfSigningKey(
        load_pem(write_key(tmp_path / "k.pem", private), write_certs(tmp_path / "c.pem", cert), test_ca.chain_path)
    )
    (report,) = verify_pdf("ku.pdf", _seal(sample_pdf("key usage"), wrong), trust)
    assert report.indication is not Indication.TOTAL_PASSED
    assert report.sub_indication is SubIndication.SIG_CONSTRAINTS_FAILURE, report.reasons
    assert any("key usage" in reason for reason in report.reasons), report.reasons


class _WrongImprintTsa(DummyTimeStamper):
    """A TSA that timestamps other bytes than it was asked to: its token does not cover the signature."""

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> Any:
        return await super().async_timestamp(hashlib.sha256(b"something else").digest(), md_algorithm)


def _tsa(
    test_ca: CaFixture, *, issuer: x509.Name | None = None, issuer_key: Any = None
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Test TSA"))
        .issuer_name(issuer or test_ca.issuing.subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(issuer_key or test_ca.issuing_key, hashes.SHA256())
    )
    return cert, private


def _dummy_tsa(test_ca: CaFixture, *, at: dt.datetime | None = None, trusted: bool = True) -> DummyTimeStamper:
    """pyHanko's in-process TSA, certified by ``test_ca`` (or by a root nobody trusts), dating its tokens ``at``."""
    if trusted:
        cert, private = _tsa(test_ca)
        chain = [to_asn1(test_ca.issuing)]
    else:
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        other = _name("Some other root")
        root = _certificate(other, other_key.public_key(), other, other_key, ca=True)
        cert, private = _tsa(test_ca, issuer=other, issuer_key=other_key)
        chain = [to_asn1(root)]
    der = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return DummyTimeStamper(to_asn1(cert), asn1_keys.PrivateKeyInfo.load(der), certs_to_embed=chain, fixed_dt=at)


def test_a_certificate_expired_after_its_timestamp_is_validated_at_the_timestamp(
    test_ca: CaFixture, trust: TrustStore, tmp_path: Path
) -> None:
    """ETSI EN 319 102-1: a trusted signature timestamp proves the signature existed while its certificate was
    valid; without a requested time the signer is validated then, and the report says so."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _certificate(
        _name("Sở Tài chính (last year's seal)", "000.01.41.H41"),
        private.public_key(),
        test_ca.issuing.subject,
        test_ca.issuing_key,
        ca=False,
        not_before=now - dt.timedelta(hours=20),  # the test CA's certificates are a day old
        not_after=now - dt.timedelta(hours=1),
    )
    expired = PdfSigningKey(
        load_pem(write_key(tmp_path / "k.pem", private), write_certs(tmp_path / "c.pem", cert), test_ca.chain_path)
    )
    stamped_at = now - dt.timedelta(hours=6)
    pdf = sign_pdf(
        sample_pdf("expired later"),
        expired,
        PdfSignOptions(role=SignatureRole.ORGANISATION),
        timestamper=_dummy_tsa(test_ca, at=stamped_at),
        signing_time=stamped_at,
    )
    (report,) = verify_pdf("expired.pdf", pdf, trust)
    assert report.indication is Indication.TOTAL_PASSED, report.reasons
    assert report.validation_time_source == "timestamp"
    assert report.validation_time == stamped_at
    (now_report,) = verify_pdf("expired.pdf", pdf, trust, at=now)
    assert now_report.sub_indication is SubIndication.EXPIRED, now_report.reasons
    assert now_report.validation_time_source == "requested" and now_report.validation_time == now

    # a timestamp from a TSA nobody trusts proves no time: validated now, expired
    pdf = sign_pdf(
        sample_pdf("expired, untrusted tsa"),
        expired,
        PdfSignOptions(role=SignatureRole.ORGANISATION),
        timestamper=_dummy_tsa(test_ca, at=stamped_at, trusted=False),
        signing_time=stamped_at,
    )
    (untrusted,) = verify_pdf("expired.pdf", pdf, trust)
    assert untrusted.timestamp is not None and not untrusted.timestamp.valid
    assert untrusted.validation_time_source == "current"
    assert untrusted.sub_indication is SubIndication.EXPIRED, untrusted.reasons


def test_a_timestamp_over_other_bytes_is_a_timestamp_failure(
    test_ca: CaFixture, key: PdfSigningKey, trust: TrustStore
) -> None:
    cert, private = _tsa(test_ca)
    der = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    asn1_key = asn1_keys.PrivateKeyInfo.load(der)
    chain = [to_asn1(test_ca.issuing)]
    honest = DummyTimeStamper(to_asn1(cert), asn1_key, certs_to_embed=chain)
    wrong = _WrongImprintTsa(to_asn1(cert), asn1_key, certs_to_embed=chain)
    options = PdfSignOptions(role=SignatureRole.ORGANISATION)
    (good,) = verify_pdf("ts.pdf", sign_pdf(sample_pdf("ts"), key, options, timestamper=honest), trust)
    assert good.indication is Indication.TOTAL_PASSED, good.reasons
    assert good.timestamp is not None and good.timestamp.valid and good.level == "B-T"
    (bad,) = verify_pdf("ts.pdf", sign_pdf(sample_pdf("ts"), key, options, timestamper=wrong), trust)
    assert bad.timestamp is not None and not bad.timestamp.imprint_matches and not bad.timestamp.valid
    assert bad.indication is Indication.TOTAL_FAILED
    assert bad.sub_indication is SubIndication.TIMESTAMP_FAILURE, bad.reasons
