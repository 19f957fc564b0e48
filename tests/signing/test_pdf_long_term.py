"""PAdES B-LT: the revocation data embedded at signing is what validates the signature later, offline.

The dev PKI with its real OCSP, CRL and timestamp responders (``signing.devpki``); pyHanko's own
validation is the reference for what the document's DSS holds.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.signers import PdfTimeStamper
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore

from node.samples import sample_pdf
from signing.devpki import DevPki, RunningResponders, create_dev_pki, serve_dev_pki
from signing.keys import load_pem
from signing.pdf import PdfSigningKey, PdfSignOptions, SignatureRole, sign_pdf, verify_pdf
from signing.report import Indication, SubIndication
from signing.timestamps import HttpTimestamper
from signing.trust import TrustStore, to_asn1
from tests.signing.fixtures import CaFixture

CODE = "000.01.41.H41"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[DevPki, RunningResponders]]:
    """A PKI of its own: the test revokes a certificate in it."""
    with serve_dev_pki(tmp_path / "pki", port=0) as responders:
        yield (
            create_dev_pki(tmp_path / "pki", [(CODE, "Sở Tài chính tỉnh Nghệ An")], base_url=responders.url),
            responders,
        )


def test_b_lt_is_validated_offline_from_its_dss_also_after_the_signer_is_revoked(
    served: tuple[DevPki, RunningResponders],
) -> None:
    pki, responders = served
    label = pki.organ(CODE).organisation.label
    pdf = sign_pdf(
        sample_pdf("long term"),
        PdfSigningKey(pki.signing_key(label)),
        PdfSignOptions(role=SignatureRole.ORGANISATION),
        timestamper=HttpTimestamper(pki.urls.tsa).pyhanko,
        long_term=pki.trust_store(),
    )
    # pyHanko itself, offline, with only what the DSS holds, insisting on revocation data: valid
    reader = PdfFileReader(io.BytesIO(pdf))
    dss = DocumentSecurityStore.read_dss(reader)
    assert dss.ocsps or dss.crls
    context = dss.as_validation_context(
        {"trust_roots": [to_asn1(pki.root.certificate())], "allow_fetching": False, "revocation_mode": "require"}
    )
    status = asyncio.run(async_validate_pdf_signature(reader.embedded_signatures[0], context))
    assert status.bottom_line, status.pretty_print_details()

    # and so do we, offline: the embedded evidence is used
    offline = pki.trust_store(revocation="require", allow_fetching=False)
    (report,) = verify_pdf("lt.pdf", pdf, offline)
    assert report.indication is Indication.TOTAL_PASSED, report.reasons
    assert report.level == "B-LT"
    signed_at = report.claimed_signing_time
    assert signed_at is not None

    # revoked afterwards: as of now it does not pass; as of its timestamp (by default) or its signing time,
    # from the DSS alone, it does
    pki.revoke(label)
    (now,) = verify_pdf("lt.pdf", pdf, pki.trust_store(), at=datetime.now(UTC))
    assert now.sub_indication is SubIndication.REVOKED
    responders.stop()  # the archive has only the document
    archive = pki.trust_store(revocation="hard-fail", allow_fetching=False)
    (archived,) = verify_pdf("lt.pdf", pdf, archive, at=signed_at)
    assert archived.indication is Indication.TOTAL_PASSED, archived.reasons
    (by_default,) = verify_pdf("lt.pdf", pdf, archive)
    assert by_default.indication is Indication.TOTAL_PASSED, by_default.reasons
    assert by_default.validation_time_source == "timestamp"


def _b_t(pki: DevPki, label: str, pdf: bytes, **kwargs: Any) -> bytes:
    return sign_pdf(
        pdf,
        PdfSigningKey(pki.signing_key(label)),
        PdfSignOptions(role=SignatureRole.ORGANISATION),
        timestamper=HttpTimestamper(pki.urls.tsa).pyhanko,
        **kwargs,
    )


def test_without_a_requested_time_a_b_t_signature_is_validated_at_its_timestamp(
    served: tuple[DevPki, RunningResponders],
) -> None:
    """ETSI EN 319 102-1: the signature timestamp proves the signature existed then; a revocation after it does
    not invalidate the signature (the envelope's rule too)."""
    pki, _ = served
    label = pki.organ(CODE).organisation.label
    pdf = _b_t(pki, label, sample_pdf("validated at its timestamp"))
    pki.revoke(label)  # from the next whole second: after the timestamp

    (report,) = verify_pdf("bt.pdf", pdf, pki.trust_store())
    assert report.indication is Indication.TOTAL_PASSED, report.reasons
    assert report.timestamp is not None and report.timestamp.valid
    assert report.validation_time_source == "timestamp"
    assert report.validation_time == report.timestamp.time
    # asked for now, it is validated now: revoked
    (now,) = verify_pdf("bt.pdf", pdf, pki.trust_store(), at=datetime.now(UTC))
    assert now.sub_indication is SubIndication.REVOKED
    assert now.validation_time_source == "requested"


def test_a_certificate_revoked_before_the_timestamp_still_fails(served: tuple[DevPki, RunningResponders]) -> None:
    pki, _ = served
    pdf = _b_t(pki, pki.revoked.label, sample_pdf("revoked first"))  # revoked a day before the PKI was made
    (report,) = verify_pdf("revoked.pdf", pdf, pki.trust_store())
    assert report.validation_time_source == "timestamp"
    assert report.indication is Indication.TOTAL_FAILED
    assert report.sub_indication is SubIndication.REVOKED, report.reasons


def test_without_a_timestamp_the_validation_time_is_now(served: tuple[DevPki, RunningResponders]) -> None:
    pki, _ = served
    label = pki.organ(CODE).organisation.label
    pdf = sign_pdf(sample_pdf("b-b"), PdfSigningKey(pki.signing_key(label)), PdfSignOptions())
    pki.revoke(label)
    (report,) = verify_pdf("bb.pdf", pdf, pki.trust_store())
    assert report.level == "B-B" and report.validation_time_source == "current"
    assert report.sub_indication is SubIndication.REVOKED


def test_b_lt_only_for_a_signature_whose_chain_the_dss_holds_data_for(
    served: tuple[DevPki, RunningResponders], test_ca: CaFixture
) -> None:
    """A DSS written for one signer does not make another signer's signature B-LT."""
    pki, responders = served
    label = pki.organ(CODE).organisation.label
    pdf = _b_t(pki, label, sample_pdf("two signers"), long_term=pki.trust_store())
    other = PdfSigningKey(load_pem(test_ca.rsa.key_path, test_ca.rsa.cert_path, test_ca.chain_path))
    pdf = sign_pdf(
        pdf, other, PdfSignOptions(role=SignatureRole.SIGNER), timestamper=HttpTimestamper(pki.urls.tsa).pyhanko
    )
    responders.stop()
    both = TrustStore(roots=(pki.root.certificate(), test_ca.root), allow_fetching=False)
    reports = verify_pdf("two.pdf", pdf, both)
    assert [r.indication for r in reports] == [Indication.TOTAL_PASSED] * 2, [r.reasons for r in reports]
    assert [r.level for r in reports] == ["B-LT", "B-T"]


def test_b_lta_only_for_a_signature_a_document_timestamp_comes_after(
    served: tuple[DevPki, RunningResponders],
) -> None:
    pki, _ = served
    label = pki.organ(CODE).organisation.label
    tsa = HttpTimestamper(pki.urls.tsa).pyhanko
    pdf = _b_t(pki, label, sample_pdf("archived"), long_term=pki.trust_store())
    stamped = PdfTimeStamper(tsa).timestamp_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), "sha256")
    pdf = _b_t(pki, label, stamped.getvalue(), long_term=pki.trust_store())  # after the document timestamp
    reports = verify_pdf("lta.pdf", pdf, pki.trust_store())
    assert [r.indication for r in reports] == [Indication.TOTAL_PASSED] * 2, [r.reasons for r in reports]
    assert [r.level for r in reports] == ["B-LTA", "B-LT"]


def test_revocation_data_in_the_signatures_own_cms_makes_it_b_lt(served: tuple[DevPki, RunningResponders]) -> None:
    """adbe.pkcs7.detached keeps it in the CMS (adbe-revocationInfoArchival), not in a DSS."""
    pki, _ = served
    key = pki.signing_key(pki.organ(CODE).organisation.label)
    meta = signers.PdfSignatureMetadata(
        field_name="Organisation1",
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.ADOBE_PKCS7_DETACHED,
        embed_validation_info=True,
        validation_context=pki.trust_store().validation_context(None),
    )
    out = signers.PdfSigner(
        meta, signer=PdfSigningKey(key).signer, timestamper=HttpTimestamper(pki.urls.tsa).pyhanko
    ).sign_pdf(IncrementalPdfFileWriter(io.BytesIO(sample_pdf("adobe"))))
    pdf = out.getvalue()
    assert b"/DSS" not in pdf
    (report,) = verify_pdf("adobe.pdf", pdf, pki.trust_store())
    assert report.indication is Indication.TOTAL_PASSED, report.reasons
    assert report.level == "B-LT"
