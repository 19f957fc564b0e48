"""When the timestamp authority's certificate is validated: envelopes and PDFs alike, as ETSI EN 319 102-1 says.

A signature timestamp proves the signature existed at its time; nothing proves the timestamp itself existed
before now, so its TSA's certificate is validated now (or at the time asked for), not at the timestamp's own
time. A TSA certificate revoked after the timestamp was made therefore leaves the timestamp proving nothing:
the signature is validated now. The dev PKI with its real OCSP, CRL and timestamp responders.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.samples import sample_monthly_report
from schemas import build_message
from signing.devpki import TSA, DevPki, RunningResponders, create_dev_pki, serve_dev_pki
from signing.envelope import sign_envelope, verify_envelope
from signing.pdf import PdfSigningKey, PdfSignOptions, SignatureRole, sign_pdf, verify_pdf
from signing.report import Indication, SignatureReport, SubIndication
from signing.timestamps import HttpTimestamper

CODE = "000.01.41.H41"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[DevPki]:
    """A PKI of its own: the tests revoke certificates in it."""
    with serve_dev_pki(tmp_path / "pki", port=0) as responders:
        assert isinstance(responders, RunningResponders)
        yield create_dev_pki(tmp_path / "pki", [(CODE, "Sở Tài chính tỉnh Nghệ An")], base_url=responders.url)


def _timestamped_envelope(pki: DevPki) -> bytes:
    """An XAdES-T envelope carrying a PDF sealed at B-T, both by the organisation, both timestamped."""
    label = pki.organ(CODE).organisation.label
    tsa = HttpTimestamper(pki.urls.tsa)
    message = sample_monthly_report(pdf_size=2_000)
    pdf = sign_pdf(
        message.attachments[0].data,
        PdfSigningKey(pki.signing_key(label)),
        PdfSignOptions(role=SignatureRole.ORGANISATION),
        timestamper=tsa.pyhanko,
    )
    message = message.model_copy(update={"attachments": (message.attachments[0].model_copy(update={"data": pdf}),)})
    return sign_envelope(build_message(message), pki.signing_key(label), timestamper=tsa)


def _both(pki: DevPki, envelope: bytes, **kwargs: object) -> tuple[SignatureReport, SignatureReport]:
    trust = pki.trust_store()
    signatures = verify_envelope(
        envelope, trust, verify_pdf=lambda name, data: verify_pdf(name, data, trust, **kwargs), **kwargs
    ).report.signatures
    (xades,) = [s for s in signatures if s.format == "XAdES"]
    (pades,) = [s for s in signatures if s.format == "PAdES"]
    return xades, pades


def test_a_tsa_certificate_revoked_after_the_timestamp_leaves_it_proving_nothing(served: DevPki) -> None:
    pki = served
    envelope = _timestamped_envelope(pki)
    for report in _both(pki, envelope):
        assert report.indication is Indication.TOTAL_PASSED, (report.id, report.reasons)
        assert report.level == "B-T"
        assert report.timestamp is not None and report.timestamp.valid, report.id
        assert report.validation_time_source == "timestamp", report.id

    stamped_at = _both(pki, envelope)[0].timestamp.time  # type: ignore[union-attr]
    pki = pki.revoke(TSA)  # from the next whole second: after both timestamps
    for report in _both(pki, envelope):
        # the timestamp is reported, not trusted now, and proves nothing: the signature is validated now, and
        # passes, since its signer's certificate is valid now
        assert report.indication is Indication.TOTAL_PASSED, (report.id, report.reasons)
        assert report.level == "B-T"
        assert report.timestamp is not None and not report.timestamp.valid, report.id
        assert report.validation_time_source == "current", report.id
    xades, _ = _both(pki, envelope)
    assert xades.timestamp is not None and "not trusted" in xades.timestamp.problem
    assert "REVOKED" in xades.timestamp.problem

    # the signer revoked too, after the timestamp: without a timestamp that proves anything, that counts
    pki = pki.revoke(pki.organ(CODE).organisation.label)
    for report in _both(pki, envelope):
        assert report.indication is Indication.TOTAL_FAILED, (report.id, report.reasons)
        assert report.sub_indication is SubIndication.REVOKED, (report.id, report.reasons)
        assert report.validation_time_source == "current", report.id

    # asked for the timestamp's time, everything is validated then, the TSA's certificate included: both pass
    for report in _both(pki, envelope, at=stamped_at):
        assert report.indication is Indication.TOTAL_PASSED, (report.id, report.reasons)
        assert report.timestamp is not None and report.timestamp.valid, report.id
        assert report.validation_time_source == "requested", report.id


def test_a_signer_revoked_after_the_timestamp_still_passes_while_the_tsa_is_trusted(served: DevPki) -> None:
    """The other half of the rule, unchanged: a trusted timestamp proves the signature existed before the
    revocation, for envelopes as for PDFs."""
    pki = served
    envelope = _timestamped_envelope(pki)
    pki = pki.revoke(pki.organ(CODE).organisation.label)
    for report in _both(pki, envelope):
        assert report.indication is Indication.TOTAL_PASSED, (report.id, report.reasons)
        assert report.validation_time_source == "timestamp", report.id
        assert report.timestamp is not None and report.validation_time == report.timestamp.time, report.id
