"""A PAdES signer's passed path validation is reused briefly (the rules of the envelope's path cache), and
the reports are the same with and without the reuse; failures are validated every time."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.sign.validation import generic_cms
from pyhanko_certvalidator import ValidationContext

from node.samples import sample_pdf
from signing._private import pathcache, pdf_paths
from signing.keys import SoftwareKey
from signing.pdf import PdfSigningKey, PdfSignOptions, SignatureRole, sign_pdf, verify_pdf
from signing.report import Indication, SignatureReport, SubIndication
from signing.trust import TrustStore
from tests.signing.fixtures import _name
from tests.signing.pki_helpers import NOW, MiniPki, SoftKey, issue, new_key


@pytest.fixture(scope="module")
def pki() -> MiniPki:
    return MiniPki.create("PDF Paths Root")


def _two_signatures(key: SoftKey) -> bytes:
    pdf_key = PdfSigningKey(SoftwareKey(key.private_key, key.certificate, key.chain))
    signed = sign_pdf(sample_pdf("Paths", size=5_000), pdf_key, PdfSignOptions(role=SignatureRole.SIGNER))
    return sign_pdf(signed, pdf_key, PdfSignOptions(role=SignatureRole.ORGANISATION))


@pytest.fixture(scope="module")
def signed(pki: MiniPki) -> bytes:
    return _two_signatures(pki.organisation("000.01.41.H41"))


def _count_validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = pdf_paths._original
    assert real is not None

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(pdf_paths, "_original", counting)
    return calls


def _comparable(reports: list[SignatureReport]) -> list[dict[str, Any]]:
    return [r.model_dump(exclude={"validation_time"}) for r in reports]


PYHANKOS = pdf_paths._original


def _without_reuse(verify: Callable[[], list[SignatureReport]]) -> list[SignatureReport]:
    assert PYHANKOS is not None
    installed = generic_cms.validate_cert_usage
    generic_cms.validate_cert_usage = PYHANKOS
    try:
        return verify()
    finally:
        generic_cms.validate_cert_usage = installed


def test_installed_over_pyhankos_own() -> None:
    assert generic_cms.validate_cert_usage is pdf_paths.validate_cert_usage
    pdf_paths.install()
    assert generic_cms.validate_cert_usage is pdf_paths.validate_cert_usage


def test_a_passed_signer_path_is_reused_briefly(pki: MiniPki, signed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    trust = TrustStore(roots=(pki.root,), allow_fetching=False)
    expected = _without_reuse(lambda: verify_pdf("a.pdf", signed, trust))
    assert [r.indication for r in expected] == [Indication.TOTAL_PASSED] * 2
    calls = _count_validations(monkeypatch)
    first = verify_pdf("a.pdf", signed, trust)
    assert calls == [1]  # both signatures: the same signer, the same certificates
    second = verify_pdf("a.pdf", signed, trust)
    assert calls == [1]
    assert _comparable(first) == _comparable(second) == _comparable(expected)
    # another store: its own cache
    verify_pdf("a.pdf", signed, TrustStore(roots=(pki.root,), allow_fetching=False))
    assert calls == [2]
    # another moment: validated again
    verify_pdf("a.pdf", signed, trust, at=NOW + dt.timedelta(minutes=5))
    assert calls == [3]
    # revocation data learnt since: validated again, and reused no longer than the data is fresh
    crl = pki.short_lived_crl()
    trust.remember_revocation([], [crl.public_bytes(Encoding.DER)])
    assert _comparable(verify_pdf("a.pdf", signed, trust)) == _comparable(expected)
    assert calls == [4]
    entries = pathcache.per_store(trust, pdf_paths._PdfPathCache)._entries
    (entry,) = [e for k, e in entries.items() if k[-1][1]]  # type: ignore[index]
    assert entry.until <= crl.next_update_utc
    assert entry.until - entry.since <= dt.timedelta(seconds=pathcache.PATH_CACHE_SECONDS)


def test_failures_are_validated_every_time(signed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    stranger = TrustStore(roots=(MiniPki.create("Other Root").root,), allow_fetching=False)
    expected = _without_reuse(lambda: verify_pdf("a.pdf", signed, stranger))
    calls = _count_validations(monkeypatch)
    for _ in range(2):
        reports = verify_pdf("a.pdf", signed, stranger)
        assert _comparable(reports) == _comparable(expected)
        assert {(r.indication, r.sub_indication) for r in reports} == {
            (Indication.INDETERMINATE, SubIndication.NO_CERTIFICATE_CHAIN_FOUND)
        }
    assert calls == [4]


def test_an_expired_signer_is_reported_as_without_reuse(pki: MiniPki, monkeypatch: pytest.MonkeyPatch) -> None:
    expired = pki.organisation(
        "000.01.41.H41", not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1)
    )
    data = _two_signatures(expired)
    trust = TrustStore(roots=(pki.root,), allow_fetching=False)
    expected = _without_reuse(lambda: verify_pdf("a.pdf", data, trust))
    assert {r.sub_indication for r in expected} == {SubIndication.EXPIRED}
    calls = _count_validations(monkeypatch)
    for _ in range(2):
        assert _comparable(verify_pdf("a.pdf", data, trust)) == _comparable(expected)
    assert calls == [4]
    # at a moment it was valid: passes, and that pass is reused at that moment only
    during = NOW - dt.timedelta(days=10)
    expected_then = _without_reuse(lambda: verify_pdf("a.pdf", data, trust, at=during))
    assert [r.indication for r in expected_then] == [Indication.TOTAL_PASSED] * 2
    for _ in range(2):
        assert _comparable(verify_pdf("a.pdf", data, trust, at=during)) == _comparable(expected_then)
    assert calls == [5]


def test_a_soft_failed_revocation_check_is_retried(pki: MiniPki, monkeypatch: pytest.MonkeyPatch) -> None:
    """Soft-fail with fetching allowed, a certificate naming a CRL, no CRL obtained: validated every time."""
    key = new_key()
    unreachable = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier("http://127.0.0.1:9/issuing.crl")],
        relative_name=None,
        reasons=None,
        crl_issuer=None,
    )
    plain = issue("Sở Nội vụ", key, (pki.issuing, pki.issuing_key), organ_code="000.02.41.H41")
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("Sở Nội vụ", "000.02.41.H41"))
        .issuer_name(pki.issuing.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(plain.not_valid_before_utc)
        .not_valid_after(plain.not_valid_after_utc)
    )
    for extension in plain.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    cert = builder.add_extension(x509.CRLDistributionPoints([unreachable]), critical=False).sign(
        pki.issuing_key, hashes.SHA256()
    )
    data = _two_signatures(SoftKey(cert, (pki.issuing,), key))
    trust = TrustStore(roots=(pki.root,), allow_fetching=True, revocation="soft-fail")
    expected = _without_reuse(lambda: verify_pdf("a.pdf", data, trust))
    assert [r.indication for r in expected] == [Indication.TOTAL_PASSED] * 2
    calls = _count_validations(monkeypatch)
    for _ in range(2):
        assert _comparable(verify_pdf("a.pdf", data, trust)) == _comparable(expected)
    assert calls == [4]


def test_outside_verify_pdf_every_call_goes_to_pyhanko(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Any, ...]] = []
    sentinel = object()

    async def recording(*args: Any) -> Any:
        seen.append(args)
        return sentinel

    monkeypatch.setattr(pdf_paths, "_original", recording)
    assert pdf_paths._SCOPE.get() is None
    args = ("cert", "context", "usage", "paths")
    assert asyncio.run(pdf_paths.validate_cert_usage(*args)) is sentinel  # type: ignore[arg-type]
    assert seen == [(*args, None)]


# --- the store's remembered revocation data, parsed once per thread --------------------------------------


def _crl(pki: MiniPki, serials: range) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.issuing.subject)
        .last_update(NOW - dt.timedelta(minutes=len(serials)))
        .next_update(NOW + dt.timedelta(hours=1))
    )
    for serial in serials:
        revoked = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW).build()
        builder = builder.add_revoked_certificate(revoked)
    return builder.sign(pki.issuing_key, hashes.SHA256()).public_bytes(Encoding.DER)


def test_remembered_revocation_data_is_parsed_once_per_thread(pki: MiniPki) -> None:
    trust = TrustStore(roots=(pki.root,), allow_fetching=False)
    crls = [_crl(pki, range(10, 12)), _crl(pki, range(20, 25))]
    trust.remember_revocation([], crls)
    first, second = trust.validation_context(None), trust.validation_context(None)
    assert sorted(c.dump() for c in first.crls) == sorted(crls)
    assert [id(c) for c in first.crls] == [id(c) for c in second.crls]  # parsed once
    elsewhere: list[Any] = []
    thread = threading.Thread(target=lambda: elsewhere.extend(trust.validation_context(None).crls))
    thread.start()
    thread.join()
    assert sorted(c.dump() for c in elsewhere) == sorted(crls)
    assert not {id(c) for c in elsewhere} & {id(c) for c in first.crls}  # each thread its own
    # more data: all of it, in the order pyhanko-certvalidator puts it (freshest first)
    newer = _crl(pki, range(30, 31))
    trust.remember_revocation([], [newer])
    assert [c.dump() for c in trust.validation_context(None).crls] == [
        c.dump() for c in ValidationContext(trust_roots=[], crls=[*crls, newer]).crls
    ]


def test_unreadable_remembered_revocation_data_fails_as_before(pki: MiniPki) -> None:
    trust = TrustStore(roots=(pki.root,), allow_fetching=False)
    trust.remember_revocation([b"\x30\x03junk"], [])
    with pytest.raises(Exception) as expected:  # noqa: PT011 - whatever pyhanko-certvalidator raises
        ValidationContext(trust_roots=[], ocsps=[b"\x30\x03junk"])
    with pytest.raises(type(expected.value)):
        trust.validation_context(None)
