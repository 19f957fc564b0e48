"""PAdES B-LT: the revocation data embedded at signing is what validates the signature later, offline.

The dev PKI with its real OCSP, CRL and timestamp responders (``signing.devpki``); pyHanko's own
validation is the reference for what the document's DSS holds.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore

from node.samples import sample_pdf
from signing.devpki import DevPki, RunningResponders, create_dev_pki, serve_dev_pki
from signing.pdf import PdfSigningKey, PdfSignOptions, SignatureRole, sign_pdf, verify_pdf
from signing.report import Indication, SubIndication
from signing.timestamps import HttpTimestamper
from signing.trust import to_asn1

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

    # revoked afterwards: now it does not pass; as of the signing time, from the DSS alone, it does
    pki.revoke(label)
    (now,) = verify_pdf("lt.pdf", pdf, pki.trust_store())
    assert now.sub_indication is SubIndication.REVOKED
    responders.stop()  # the archive has only the document
    (archived,) = verify_pdf("lt.pdf", pdf, pki.trust_store(revocation="hard-fail", allow_fetching=False), at=signed_at)
    assert archived.indication is Indication.TOTAL_PASSED, archived.reasons
