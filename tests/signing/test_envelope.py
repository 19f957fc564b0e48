"""The sending organisation's envelope signature: sign, verify, and every way it must not pass."""

from __future__ import annotations

import copy
import datetime as dt
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from node.samples import MINISTRY, sample_monthly_report, sample_pdf
from schemas import NAMESPACE, OrganEntry, OrganRegistry, StatusCode, build_message, encode_attachment
from signing.envelope import sign_envelope, verify_envelope
from signing.errors import SignError
from signing.report import Indication, SubIndication
from signing.trust import TrustStore
from tests.conftest import FIXTURES, require
from tests.signing.pki_helpers import NOW, MiniPki, SoftKey

SENDER = "000.01.41.H41"
DS = "http://www.w3.org/2000/09/xmldsig#"


def ed(local: str) -> str:
    return f"{{{NAMESPACE}}}{local}"


@pytest.fixture(scope="module")
def pki() -> MiniPki:
    return MiniPki.create()


@pytest.fixture(scope="module")
def org_key(pki: MiniPki) -> SoftKey:
    return pki.organisation(SENDER)


@pytest.fixture(scope="module")
def trust(pki: MiniPki) -> TrustStore:
    return TrustStore(roots=(pki.root,), allow_fetching=False)


@pytest.fixture(scope="module")
def unsigned() -> bytes:
    return build_message(sample_monthly_report(pdf_size=20_000))


@pytest.fixture(scope="module")
def signed(unsigned: bytes, org_key: SoftKey) -> bytes:
    return sign_envelope(unsigned, org_key)


def only(report_sigs):  # type: ignore[no-untyped-def]
    (sig,) = [s for s in report_sigs if s.id == "envelope"]
    return sig


def test_signed_envelope_passes_and_returns_exactly_the_message(signed: bytes, trust: TrustStore) -> None:
    result = verify_envelope(signed, trust)
    sig = only(result.report.signatures)
    assert sig.indication is Indication.TOTAL_PASSED, sig.reasons
    assert result.report.exit_code == 0
    assert sig.format == "XAdES"
    assert sig.level == "B-B"
    assert sig.signer is not None
    assert sig.signer.organ_code == SENDER
    assert sig.signed_parts == (
        "MessageHeader",
        "Bussiness",
        "edXMLManifest",
        "attachment cid:1 (bao-cao-ngan-sach-2026-10.pdf)",
    )
    assert result.message == sample_monthly_report(pdf_size=20_000)
    assert sig.claimed_signing_time is not None
    assert [c.common_name for c in sig.chain][-1] == "Test Root CA"


def test_ecdsa_p256_signature(pki: MiniPki, unsigned: bytes, trust: TrustStore) -> None:
    key = pki.organisation(SENDER, kind="ec")
    result = verify_envelope(sign_envelope(unsigned, key), trust)
    assert only(result.report.signatures).indication is Indication.TOTAL_PASSED


def test_status_message_signature(org_key: SoftKey, trust: TrustStore) -> None:
    from schemas import Organization, ResponseFor, StatusHeader, StatusMessage

    status = StatusMessage(
        header=StatusHeader(
            from_=Organization(organ_id=SENDER, organ_name="Sở Tài chính"),
            response_for=ResponseFor(organ_id=MINISTRY.organ_id, document_id="000.00.00.G12,2026/11/01,12/CV-BTC"),
            status_code=StatusCode.REGISTERED,
            timestamp=dt.datetime(2026, 11, 20, 9, 0),
        )
    )
    result = verify_envelope(sign_envelope(build_message(status), org_key), trust)
    sig = only(result.report.signatures)
    assert sig.indication is Indication.TOTAL_PASSED, sig.reasons
    assert sig.signed_parts == ("MessageHeader",)
    assert result.message == status


def test_xmlsec1_verifies_our_signature(signed: bytes, pki: MiniPki, tmp_path: Path) -> None:
    require(shutil.which("xmlsec1") is not None, "xmlsec1 (Debian package xmlsec1) is not installed")
    (tmp_path / "signed.xml").write_bytes(signed)
    (tmp_path / "root.pem").write_bytes(pki.root.public_bytes(Encoding.PEM))
    ids = [
        "MessageHeader",
        "Bussiness",
        "edXMLManifest",
        "Attachment",
        "http://uri.etsi.org/01903/v1.3.2#:SignedProperties",
    ]
    args = [
        "xmlsec1",
        "--verify",
        *[a for i in ids for a in ("--id-attr:Id", i)],
        "--trusted-pem",
        str(tmp_path / "root.pem"),
        str(tmp_path / "signed.xml"),
    ]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "SignedInfo References (ok/all): 5/5" in result.stderr
    # and xmlsec1 agrees when it must not pass
    (tmp_path / "tampered.xml").write_bytes(
        signed.replace(b"BC-STC</edXML:CodeNotation>", b"BC-XXX</edXML:CodeNotation>")
    )
    args[-1] = str(tmp_path / "tampered.xml")
    assert subprocess.run(args, capture_output=True, check=False).returncode != 0


def test_hops_may_append_to_the_route(signed: bytes, trust: TrustStore) -> None:
    root = etree.fromstring(signed)
    trace_list = root.find(f"{ed('edXMLEnvelope')}/{ed('edXMLHeader')}/{ed('TraceHeaderList')}")
    hop = etree.Element(ed("TraceHeader"))
    etree.SubElement(hop, ed("OrganId")).text = "000.00.00.H41"
    etree.SubElement(hop, ed("Timestamp")).text = "2026/11/16 09:31:02"
    trace_list.find(ed("Bussiness")).addprevious(hop)
    result = verify_envelope(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), trust)
    assert only(result.report.signatures).indication is Indication.TOTAL_PASSED
    assert [h.organ_id for h in result.route] == [SENDER, "000.00.00.H41"]


def _edit(signed: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(signed)
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _header(root: etree._Element) -> etree._Element:
    return root.find(f"{ed('edXMLEnvelope')}/{ed('edXMLHeader')}")


def _swap_attachment(root: etree._Element) -> None:
    encoded = root.find(f"{ed('AttachmentEncoded')}/{ed('Attachment')}/{ed('ContentTransferEncoded')}")
    encoded.text = encode_attachment("bao-cao-ngan-sach-2026-10.pdf", "application/pdf", sample_pdf("forged"))


def _remove_signature(root: etree._Element) -> None:
    sig = _header(root).find(f"{{{DS}}}Signature")
    sig.getparent().remove(sig)


def _drop_attachment_reference(root: etree._Element) -> None:
    ref = root.find(f".//{{{DS}}}Reference[@URI='#edxml-attachment-1']")
    ref.getparent().remove(ref)


def _flip_signature_value(root: etree._Element) -> None:
    value = root.find(f".//{{{DS}}}SignatureValue")
    value.text = ("B" if value.text[0] == "A" else "A") + value.text[1:]


def _wrap_header(root: etree._Element) -> None:
    # XSW: the signed header moves into an unsigned place, a forged one takes its place without an Id.
    header = _header(root)
    genuine = header.find(ed("MessageHeader"))
    forged = copy.deepcopy(genuine)
    del forged.attrib["Id"]
    forged.find(ed("Subject")).text = "Forged subject"
    header.replace(genuine, forged)
    root.find(ed("edXMLEnvelope")).append(genuine)


def _duplicate_id(root: etree._Element) -> None:
    header = _header(root)
    forged = copy.deepcopy(header.find(ed("MessageHeader")))
    forged.find(ed("Subject")).text = "Forged subject"
    header.find(ed("TraceHeaderList")).append(forged)


def _signature_elsewhere(root: etree._Element) -> None:
    sig = _header(root).find(f"{{{DS}}}Signature")
    root.append(sig)


def _extra_unsigned_element(root: etree._Element) -> None:
    etree.SubElement(root.find(f"{ed('edXMLEnvelope')}/{ed('edXMLBody')}"), ed("Note")).text = "Please pay to …"


def _later_signing_time(root: etree._Element) -> None:
    root.find(".//{http://uri.etsi.org/01903/v1.3.2#}SigningTime").text = "2030-01-01T00:00:00+07:00"


def _whole_document_reference(root: etree._Element) -> None:
    ref = root.find(f".//{{{DS}}}Reference[@URI='#edxml-header']")
    ref.set("URI", "")


TAMPERING = [
    (
        "subject changed",
        lambda s: s.replace("tình hình".encode(), "TÌNH HÌNH".encode(), 1),
        SubIndication.HASH_FAILURE,
        "MessageHeader",
    ),
    (
        "recipient changed",
        lambda s: s.replace(b"000.00.00.G12", b"000.00.00.G13", 1),
        SubIndication.HASH_FAILURE,
        "MessageHeader",
    ),
    (
        "business block changed",
        lambda s: s.replace(b"<edXML:Paper>0</edXML:Paper>", b"<edXML:Paper>1</edXML:Paper>"),
        SubIndication.HASH_FAILURE,
        "Bussiness",
    ),
    (
        "manifest changed",
        lambda s: s.replace("<edXML:Description>Báo cáo".encode(), "<edXML:Description>Bảo cáo".encode(), 1),
        SubIndication.HASH_FAILURE,
        "edXMLManifest",
    ),
    ("attachment swapped", lambda s: _edit(s, _swap_attachment), SubIndication.HASH_FAILURE, "attachment cid:1"),
    ("signature removed", lambda s: _edit(s, _remove_signature), SubIndication.FORMAT_FAILURE, "not signed"),
    (
        "attachment reference removed",
        lambda s: _edit(s, _drop_attachment_reference),
        SubIndication.SIGNED_DATA_NOT_FOUND,
        "attachment cid:1",
    ),
    (
        "signature value changed",
        lambda s: _edit(s, _flip_signature_value),
        SubIndication.SIG_CRYPTO_FAILURE,
        "signature value",
    ),
    ("signing time changed", lambda s: _edit(s, _later_signing_time), SubIndication.HASH_FAILURE, "SignedProperties"),
    ("header wrapped", lambda s: _edit(s, _wrap_header), SubIndication.FORMAT_FAILURE, "edXMLEnvelope"),
    ("duplicate Id", lambda s: _edit(s, _duplicate_id), SubIndication.FORMAT_FAILURE, "more than one"),
    ("signature moved", lambda s: _edit(s, _signature_elsewhere), SubIndication.FORMAT_FAILURE, "edXMLHeader"),
    (
        "unsigned element added",
        lambda s: _edit(s, _extra_unsigned_element),
        SubIndication.FORMAT_FAILURE,
        "only the route may be unsigned",
    ),
    (
        "whole-document reference",
        lambda s: _edit(s, _whole_document_reference),
        SubIndication.FORMAT_FAILURE,
        "whole document",
    ),
]


@pytest.mark.parametrize(("change", "sub", "reason"), [t[1:] for t in TAMPERING], ids=[t[0] for t in TAMPERING])
def test_tampering_never_passes(
    signed: bytes, trust: TrustStore, change: Callable[[bytes], bytes], sub: SubIndication, reason: str
) -> None:
    tampered = change(signed)
    assert tampered != signed
    result = verify_envelope(tampered, trust)
    sig = only(result.report.signatures)
    assert sig.indication is not Indication.TOTAL_PASSED
    assert result.report.exit_code != 0
    assert sig.sub_indication is sub, sig.reasons
    assert any(reason in r for r in sig.reasons), sig.reasons
    if sub in (
        SubIndication.HASH_FAILURE,
        SubIndication.SIG_CRYPTO_FAILURE,
        SubIndication.FORMAT_FAILURE,
        SubIndication.SIGNED_DATA_NOT_FOUND,
    ):
        assert result.message is None  # nothing unverified is handed to callers


def test_forged_from_is_refused(pki: MiniPki, trust: TrustStore) -> None:
    other = pki.organisation("000.01.42.H42", name="Sở Tài chính Hà Tĩnh")
    message = build_message(sample_monthly_report())  # From says 000.01.41.H41
    sig = only(verify_envelope(sign_envelope(message, other), trust).report.signatures)
    assert sig.indication is Indication.TOTAL_FAILED
    assert sig.sub_indication is SubIndication.SENDER_MISMATCH
    assert "000.01.42.H42" in sig.reasons[0]
    assert SENDER in sig.reasons[0]


def test_registry_certificates_decide_who_may_sign(pki: MiniPki, org_key: SoftKey, signed: bytes) -> None:
    stranger = pki.organisation(SENDER)  # right organ code in the certificate, but not the registered one
    registry = OrganRegistry(
        [
            OrganEntry(
                code=__import__("schemas").OrganCode.parse(SENDER),
                name="Sở Tài chính",
                certificates=(org_key.certificate.public_bytes(Encoding.PEM),),
            )
        ]
    )
    trust = TrustStore(roots=(pki.root,), allow_fetching=False, registry=registry)
    assert only(verify_envelope(signed, trust).report.signatures).indication is Indication.TOTAL_PASSED
    forged = sign_envelope(build_message(sample_monthly_report()), stranger)
    sig = only(verify_envelope(forged, trust).report.signatures)
    assert sig.sub_indication is SubIndication.SENDER_MISMATCH
    assert "registered" in sig.reasons[0]


def test_untrusted_root(signed: bytes) -> None:
    other = MiniPki.create("Somebody Else's Root")
    sig = only(verify_envelope(signed, TrustStore(roots=(other.root,), allow_fetching=False)).report.signatures)
    assert sig.indication is Indication.INDETERMINATE
    assert sig.sub_indication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND
    assert verify_envelope(signed, TrustStore(roots=(other.root,), allow_fetching=False)).report.exit_code == 2


def test_expired_certificate_and_validation_at_a_time(pki: MiniPki, trust: TrustStore, unsigned: bytes) -> None:
    start, end = NOW - dt.timedelta(days=400), NOW - dt.timedelta(days=35)
    old = pki.organisation(SENDER, not_before=start, not_after=end)
    signed = sign_envelope(unsigned, old, signing_time=end - dt.timedelta(days=10))
    now = only(verify_envelope(signed, trust).report.signatures)
    assert now.indication is Indication.INDETERMINATE
    assert now.sub_indication is SubIndication.EXPIRED
    back_then = only(verify_envelope(signed, trust, at=end - dt.timedelta(days=10)).report.signatures)
    assert back_then.indication is Indication.TOTAL_PASSED, back_then.reasons
    assert back_then.validation_time_source == "requested"


def test_not_yet_valid_certificate(pki: MiniPki, trust: TrustStore, unsigned: bytes) -> None:
    future = pki.organisation(SENDER, not_before=NOW + dt.timedelta(days=3), not_after=NOW + dt.timedelta(days=30))
    sig = only(verify_envelope(sign_envelope(unsigned, future), trust).report.signatures)
    assert sig.sub_indication is SubIndication.NOT_YET_VALID


def test_weak_rsa_key_is_refused_when_signing(pki: MiniPki, unsigned: bytes) -> None:
    from tests.signing.pki_helpers import issue, new_key

    weak = new_key(bits=1024)
    cert = issue("Weak", weak, (pki.issuing, pki.issuing_key), organ_code=SENDER)
    with pytest.raises(SignError, match="2048"):
        sign_envelope(unsigned, SoftKey(cert, (), weak))


def test_double_signing_is_refused(signed: bytes, org_key: SoftKey) -> None:
    with pytest.raises(SignError, match="already signed"):
        sign_envelope(signed, org_key)


def test_unreadable_and_unsafe_input(trust: TrustStore) -> None:
    for data in (b"not xml", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><edXML/>'):
        result = verify_envelope(data, trust)
        sig = only(result.report.signatures)
        assert sig.indication is Indication.TOTAL_FAILED
        assert sig.sub_indication is SubIndication.FORMAT_FAILURE
        assert result.message is None


def test_legacy_placeholder_signature_is_not_a_signature(trust: TrustStore) -> None:
    fixture = FIXTURES / "edxml" / "quirks" / "legacy-signature.edxml"
    require(fixture.is_file(), f"fixture {fixture} not written yet")
    sig = only(verify_envelope(fixture.read_bytes(), trust).report.signatures)
    assert sig.sub_indication is SubIndication.FORMAT_FAILURE
    assert "legacy" in sig.reasons[0]


def test_pdf_verifier_hook_sees_each_attached_pdf(signed: bytes, trust: TrustStore) -> None:
    seen: list[tuple[str, bytes]] = []

    def fake_pdf_verifier(name: str, data: bytes) -> list:  # type: ignore[type-arg]
        seen.append((name, data))
        return []

    verify_envelope(signed, trust, verify_pdf=fake_pdf_verifier)
    assert [n for n, _ in seen] == ["bao-cao-ngan-sach-2026-10.pdf"]
    assert seen[0][1].startswith(b"%PDF-")


def test_a_pdf_labelled_as_something_else_still_has_its_signatures_checked(org_key: SoftKey, trust: TrustStore) -> None:
    """The recipient reads a PDF as a PDF whatever its label says, so its signatures are checked whatever the label."""
    message = sample_monthly_report(pdf_size=2_000)
    pdf = message.attachments[0]
    disguised = pdf.model_copy(update={"name": "bang-so-lieu.bin", "content_type": "application/octet-stream"})
    text = pdf.model_copy(
        update={"name": "ghi-chu.txt", "content_type": "text/plain", "data": "Ghi chú".encode(), "content_id": "2"}
    )
    message = message.model_copy(update={"attachments": (disguised, text)})
    seen: list[str] = []

    def pdf_verifier(name: str, data: bytes) -> list:  # type: ignore[type-arg]
        seen.append(name)
        return []

    verify_envelope(sign_envelope(build_message(message), org_key), trust, verify_pdf=pdf_verifier)
    assert seen == ["bang-so-lieu.bin"]
