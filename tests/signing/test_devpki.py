"""The development PKI, checked with tools that are not ours: the openssl CLI, cryptography's OCSP and
CRL parsers, asn1crypto's TSP structures, pyhanko-certvalidator fetching from the running responders."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import secrets
import shutil
import stat
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import ExpiredError, PathBuildingError, RevokedError
from typer.testing import CliRunner

from node.cli import pki as pki_cli
from signing.devpki import (
    DEV_POLICY_OID,
    DevPki,
    RunningResponders,
    create_dev_pki,
    main_init,
    organ_code_of,
    parse_organ,
    serve_dev_pki,
)
from signing.errors import DevPkiError
from signing.timestamps import verify_timestamp_token
from tests.conftest import require

ORGANS = [("000.00.00.G12", "Bộ Tài chính"), ("000.01.41.H41", "Sở Tài chính tỉnh Nghệ An")]
FIRST, SECOND = ORGANS[0][0], ORGANS[1][0]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevPki, RunningResponders]]:
    """Responders bound first on a free port, then the PKI created with their URL."""
    directory = tmp_path_factory.mktemp("devpki")
    with serve_dev_pki(directory, port=0) as responders:
        pki = create_dev_pki(directory, ORGANS, base_url=responders.url)
        yield pki, responders


@pytest.fixture(scope="module")
def pki(served: tuple[DevPki, RunningResponders]) -> DevPki:
    return served[0]


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def post(url: str, body: bytes, content_type: str) -> bytes:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()  # type: ignore[no-any-return]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()  # type: ignore[no-any-return]


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    require(shutil.which("openssl") is not None, "the openssl command-line tool")
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def openssl_verify(pki: DevPki, cert: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return openssl("verify", *extra, "-CAfile", str(pki.root.path), "-untrusted", str(pki.chain_path), str(cert))


# --- what is on disk ---------------------------------------------------------------------------------------


def test_layout_modes_and_description(pki: DevPki) -> None:
    d = pki.directory
    for name in ("root-ca.pem", "issuing-ca.pem", "chain.pem", "crl.pem", "crl.der", "ocsp-responder.pem", "tsa.pem"):
        assert (d / name).is_file(), name
    for code, _ in ORGANS:
        for stem in ("organisation", "signer"):
            for ext in ("pem", "key", "p12"):
                assert (d / "organs" / code / f"{stem}.{ext}").is_file()
    for name in ("ocsp-responder.key", "tsa.key"):
        assert (d / name).is_file()
    assert pki.expired.path == d / "organs" / FIRST / "expired.pem"
    assert pki.revoked.path == d / "organs" / FIRST / "revoked.pem"
    assert pki.untrusted_signer.path.parent == d / "untrusted"

    secret_files = [pki.passphrase_path, *d.rglob("*.key"), *d.rglob("*.p12")]
    for path in secret_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    passphrase = pki.passphrase_path.read_text().strip()
    assert len(passphrase) >= 24
    manifest = pki.manifest_path.read_text(encoding="utf-8")
    assert passphrase not in manifest
    for key_file in d.rglob("*.key"):  # encrypted PKCS#8, never a bare key
        assert key_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")

    data = json.loads(manifest)
    assert data["base_url"] == pki.base_url
    entry = data["certificates"][f"organs/{FIRST}/organisation"]
    cert = load(pki.organ(FIRST).organisation.path)
    assert int(entry["serial"], 16) == cert.serial_number
    assert entry["subject"] == cert.subject.rfc4514_string()
    assert entry["organ_code"] == FIRST
    assert DevPki.load(d) == pki


def test_root_says_not_for_production(pki: DevPki) -> None:
    root = load(pki.root.path)
    cn = root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    org = root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert "NOT FOR PRODUCTION" in str(cn)
    assert "Liên thông" in str(cn)
    assert "NOT FOR PRODUCTION" in str(org)
    assert root.issuer == root.subject
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_openssl_verifies_every_agency_certificate(pki: DevPki) -> None:
    for organ in pki.organs:
        for info in (organ.organisation, organ.signer):
            result = openssl_verify(pki, info.path)
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip().endswith(": OK")
    result = openssl_verify(pki, pki.tsa.path, "-purpose", "timestampsign")
    assert result.returncode == 0, result.stderr


def test_openssl_rejects_expired_and_untrusted(pki: DevPki) -> None:
    expired = openssl_verify(pki, pki.expired.path)
    assert expired.returncode != 0
    assert "expired" in expired.stdout + expired.stderr
    untrusted = openssl_verify(pki, pki.untrusted_signer.path)
    assert untrusted.returncode != 0
    assert "unable to get local issuer certificate" in untrusted.stdout + untrusted.stderr


def test_openssl_reads_the_pkcs12_files(pki: DevPki) -> None:
    p12 = pki.organ(SECOND).signer.p12_path
    assert p12 is not None
    result = openssl("pkcs12", "-in", str(p12), "-passin", f"file:{pki.passphrase_path}", "-nokeys", "-clcerts")
    assert result.returncode == 0, result.stderr
    assert x509.load_pem_x509_certificate(result.stdout.encode()) == load(pki.organ(SECOND).signer.path)


def test_organ_code_is_the_uid_attribute(pki: DevPki) -> None:
    for code, name in ORGANS:
        organ = pki.organ(code)
        seal, person = load(organ.organisation.path), load(organ.signer.path)
        for cert in (seal, person):
            uid = cert.subject.get_attributes_for_oid(x509.ObjectIdentifier("0.9.2342.19200300.100.1.1"))
            assert [a.value for a in uid] == [code]
            assert organ_code_of(cert) == code
            assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == name
        assert seal.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        person_cn = str(person.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
        assert person_cn.endswith(f"({name})")
        assert organ.organisation.organ_code == code
    # the forged one claims the first agency
    assert organ_code_of(load(pki.untrusted_signer.path)) == FIRST


def test_extensions_point_at_the_responders(served: tuple[DevPki, RunningResponders]) -> None:
    pki, responders = served
    cert = load(pki.organ(FIRST).organisation.path)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature and usage.value.content_commitment
    assert not usage.value.key_cert_sign
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    ocsp_urls = [a.access_location.value for a in aia if a.access_method == AuthorityInformationAccessOID.OCSP]
    assert ocsp_urls == [f"{responders.url}/ocsp"]
    dps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for dp in dps for n in dp.full_name or ()] == [f"{responders.url}/crl/issuing-ca.crl"]
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier for p in policies] == [DEV_POLICY_OID]

    tsa = load(pki.tsa.path)
    eku = tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    responder = load(pki.ocsp_responder.path)
    assert list(responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.OCSP_SIGNING
    ]
    responder.extensions.get_extension_for_class(x509.OCSPNoCheck)


def test_validity_of_expired_and_revoked(pki: DevPki) -> None:
    now = dt.datetime.now(dt.UTC)
    expired = load(pki.expired.path)
    assert expired.not_valid_after_utc < now - dt.timedelta(days=20)
    assert pki.revoked.revoked_at is not None
    assert pki.revoked.revocation_reason == "key_compromise"
    assert all(not c.revoked for label, c in pki.certificates.items() if label != pki.revoked.label)


# --- OCSP -------------------------------------------------------------------------------------------------


def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256())
    builder = builder.add_extension(x509.OCSPNonce(secrets.token_bytes(16)), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def check_signed_by(response: ocsp.OCSPResponse, responder: x509.Certificate) -> None:
    assert response.certificates == [responder]
    assert response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(responder.public_key()).digest
    key = responder.public_key()
    assert response.signature_hash_algorithm is not None
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(
            response.signature, response.tbs_response_bytes, padding.PKCS1v15(), response.signature_hash_algorithm
        )
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(response.signature_hash_algorithm))


def test_ocsp_good_over_post(served: tuple[DevPki, RunningResponders]) -> None:
    pki, responders = served
    cert, issuer = load(pki.organ(SECOND).organisation.path), load(pki.issuing_ca.path)
    request = ocsp_request(cert, issuer)
    response = ocsp.load_der_ocsp_response(post(pki.urls.ocsp, request, "application/ocsp-request"))
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == cert.serial_number
    assert response.this_update_utc <= dt.datetime.now(dt.UTC) < response.next_update_utc  # type: ignore[operator]
    nonce = ocsp.load_der_ocsp_request(request).extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    check_signed_by(response, load(pki.ocsp_responder.path))
    assert pki.urls.ocsp.startswith(responders.url)


def test_ocsp_revoked_over_get(pki: DevPki) -> None:
    cert, issuer = load(pki.revoked.path), load(pki.issuing_ca.path)
    encoded = urllib.parse.quote(base64.b64encode(ocsp_request(cert, issuer)).decode(), safe="")
    response = ocsp.load_der_ocsp_response(get(f"{pki.urls.ocsp}/{encoded}"))
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason == x509.ReasonFlags.key_compromise
    assert response.revocation_time_utc == pki.revoked.revoked_at
    check_signed_by(response, load(pki.ocsp_responder.path))


def test_ocsp_unknown_serial_and_bad_requests(pki: DevPki) -> None:
    issuer = load(pki.issuing_ca.path)
    known = ocsp.OCSPRequestBuilder().add_certificate(load(pki.organ(FIRST).signer.path), issuer, hashes.SHA1()).build()
    stranger = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        known.issuer_name_hash, known.issuer_key_hash, x509.random_serial_number(), hashes.SHA1()
    )
    der = stranger.build().public_bytes(serialization.Encoding.DER)
    response = ocsp.load_der_ocsp_response(post(pki.urls.ocsp, der, "application/ocsp-request"))
    assert response.certificate_status == ocsp.OCSPCertStatus.UNKNOWN

    garbage = ocsp.load_der_ocsp_response(post(pki.urls.ocsp, b"\x30\x03\x02\x01\x00", "application/ocsp-request"))
    assert garbage.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    with pytest.raises(urllib.error.HTTPError) as wrong_type:
        post(pki.urls.ocsp, der, "text/plain")
    assert wrong_type.value.code == 415


# --- CRL --------------------------------------------------------------------------------------------------


def test_crl_downloads_and_lists_the_revoked_serial(pki: DevPki) -> None:
    issuer = load(pki.issuing_ca.path)
    served = x509.load_der_x509_crl(get(pki.urls.crl))
    on_disk = x509.load_der_x509_crl(pki.crl_der_path.read_bytes())
    for crl in (served, on_disk):
        assert crl.issuer == issuer.subject
        assert crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
        entry = crl.get_revoked_certificate_by_serial_number(pki.revoked.serial)
        assert entry is not None
        assert entry.revocation_date_utc == pki.revoked.revoked_at
        assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
        assert crl.get_revoked_certificate_by_serial_number(pki.organ(FIRST).organisation.serial) is None
        assert len(crl) == 1
    assert served.next_update_utc is not None
    assert served.next_update_utc > dt.datetime.now(dt.UTC)
    assert x509.load_pem_x509_crl(pki.crl_path.read_bytes()) == on_disk
    root_crl = x509.load_der_x509_crl(get(pki.urls.root_crl))
    assert root_crl.is_signature_valid(load(pki.root.path).public_key())  # type: ignore[arg-type]
    assert len(root_crl) == 0
    assert x509.load_der_x509_certificate(get(pki.urls.issuing_ca)) == issuer


# --- timestamps -------------------------------------------------------------------------------------------


def timestamp_request(digest: bytes, nonce: int) -> bytes:
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": tsp.MessageImprint(
                {"hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}), "hashed_message": digest}
            ),
            "nonce": nonce,
            "cert_req": True,
        }
    )
    return request.dump()  # type: ignore[no-any-return]


def test_tsa_token_covers_the_imprint_and_is_signed_by_the_tsa(pki: DevPki) -> None:
    digest = hashlib.sha256(b"bao-cao-thang.pdf").digest()
    nonce = secrets.randbits(62)
    reply = tsp.TimeStampResp.load(post(pki.urls.tsa, timestamp_request(digest, nonce), "application/timestamp-query"))
    assert reply["status"]["status"].native == "granted"
    token = reply["time_stamp_token"]
    signed_data: cms.SignedData = token["content"]
    info = signed_data["encap_content_info"]["content"].parsed
    assert info["message_imprint"]["hashed_message"].native == digest
    assert info["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert info["nonce"].native == nonce
    assert info["policy"].native == DEV_POLICY_OID.dotted_string
    assert abs(info["gen_time"].native - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)

    tsa = asn1_x509.Certificate.load(load(pki.tsa.path).public_bytes(serialization.Encoding.DER))
    sid = signed_data["signer_infos"][0]["sid"].chosen
    assert sid["serial_number"].native == tsa.serial_number
    assert sid["issuer"] == tsa.issuer
    assert tsa.dump() in [c.chosen.dump() for c in signed_data["certificates"]]

    verified = verify_timestamp_token(token.dump(), digest, pki.trust_store())
    assert verified.valid, verified.problem
    assert verified.imprint_matches
    assert "Timestamp Authority" in verified.tsa
    other = verify_timestamp_token(token.dump(), hashlib.sha256(b"something else").digest(), pki.trust_store())
    assert not other.imprint_matches


def tsa_status(reply: bytes) -> tsp.PKIStatusInfo:
    """The status of a TimeStampResp (asn1crypto's class requires the token a refusal leaves out)."""
    return tsp.PKIStatusInfo.load(core.Sequence.load(reply)[0].dump())


def test_tsa_refuses_what_it_should(pki: DevPki) -> None:
    with pytest.raises(urllib.error.HTTPError) as wrong_type:
        post(pki.urls.tsa, timestamp_request(bytes(32), 1), "application/octet-stream")
    assert wrong_type.value.code == 415
    short = tsa_status(post(pki.urls.tsa, timestamp_request(bytes(20), 1), "application/timestamp-query"))
    assert short["status"].native == "rejection"
    assert "bad_data_format" in short["fail_info"].native
    md5 = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "md5"}, "hashed_message": bytes(16)},
        }
    ).dump()
    refused = tsa_status(post(pki.urls.tsa, md5, "application/timestamp-query"))
    assert refused["status"].native == "rejection"
    assert "bad_alg" in refused["fail_info"].native


def test_pyhanko_http_timestamper_gets_a_token(pki: DevPki) -> None:
    from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper

    digest = hashlib.sha256(b"envelope").digest()

    async def stamp() -> cms.ContentInfo:
        return await HTTPTimeStamper(pki.urls.tsa).async_timestamp(digest, "sha256")

    token = asyncio.run(stamp())
    assert verify_timestamp_token(token.dump(), digest, pki.trust_store()).valid


# --- path validation with revocation fetched from the responders ------------------------------------------


def asn1(path: Path) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(load(path).public_bytes(serialization.Encoding.DER))


def validator(
    pki: DevPki, cert: Path, moment: dt.datetime | None = None
) -> tuple[CertificateValidator, ValidationContext]:
    context = ValidationContext(
        trust_roots=[asn1(pki.root.path)],
        allow_fetching=True,
        revocation_mode="hard-fail",
        moment=moment,
        retroactive_revinfo=moment is not None,
    )
    return CertificateValidator(asn1(cert), [asn1(pki.chain_path)], validation_context=context), context


def test_certvalidator_accepts_the_organisation_with_fetched_revocation_data(pki: DevPki) -> None:
    check, context = validator(pki, pki.organ(FIRST).organisation.path)
    path = asyncio.run(check.async_validate_usage({"non_repudiation"}))
    assert len(path) == 3
    # the status was fetched from our responders: an OCSP response and CRLs are now known to the context
    assert context.ocsps
    assert context.crls


def test_certvalidator_reports_the_revoked_certificate(pki: DevPki) -> None:
    check, _ = validator(pki, pki.revoked.path)
    with pytest.raises(RevokedError, match="revoked"):
        asyncio.run(check.async_validate_usage({"non_repudiation"}))


def test_certvalidator_expired_now_but_fine_inside_its_validity(pki: DevPki) -> None:
    check, _ = validator(pki, pki.expired.path)
    with pytest.raises(ExpiredError):
        asyncio.run(check.async_validate_usage({"non_repudiation"}))
    inside = pki.expired.not_before + dt.timedelta(days=10)
    check, _ = validator(pki, pki.expired.path, moment=inside)
    asyncio.run(check.async_validate_usage({"non_repudiation"}))


def test_certvalidator_rejects_the_untrusted_certificate(pki: DevPki) -> None:
    context = ValidationContext(trust_roots=[asn1(pki.root.path)], allow_fetching=True, revocation_mode="hard-fail")
    check = CertificateValidator(
        asn1(pki.untrusted_signer.path), [asn1(pki.untrusted_root.path)], validation_context=context
    )
    with pytest.raises(PathBuildingError):
        asyncio.run(check.async_validate_usage({"non_repudiation"}))


def test_signing_keys_load_the_pkcs12_files(pki: DevPki) -> None:
    key = pki.signing_key(pki.organ(SECOND).organisation.label)
    assert key.certificate == load(pki.organ(SECOND).organisation.path)
    assert key.chain == (load(pki.issuing_ca.path),)
    pem_key = pki.private_key(pki.organ(SECOND).organisation.label)
    assert pem_key.public_key() == key.certificate.public_key()


# --- lifecycle --------------------------------------------------------------------------------------------


def test_revoking_later_is_answered_at_once(tmp_path: Path) -> None:
    with serve_dev_pki(tmp_path) as responders:
        initially = responders.pki
        assert initially is None
        with pytest.raises(urllib.error.HTTPError) as empty:
            get(f"{responders.url}/crl/issuing-ca.crl")
        assert empty.value.code == 503
        pki = create_dev_pki(tmp_path, ORGANS[:1], base_url=responders.url, key_algorithm="ecdsa-p256")
        signer = load(pki.organ(FIRST).signer.path)
        request = ocsp_request(signer, load(pki.issuing_ca.path))
        before = ocsp.load_der_ocsp_response(post(pki.urls.ocsp, request, "application/ocsp-request"))
        assert before.certificate_status == ocsp.OCSPCertStatus.GOOD
        check_signed_by(before, load(pki.ocsp_responder.path))

        updated = pki.revoke(pki.organ(FIRST).signer.label, reason="superseded")
        after = ocsp.load_der_ocsp_response(post(pki.urls.ocsp, request, "application/ocsp-request"))
        assert after.certificate_status == ocsp.OCSPCertStatus.REVOKED
        assert after.revocation_reason == x509.ReasonFlags.superseded
        crl = x509.load_der_x509_crl(get(pki.urls.crl))
        assert crl.get_revoked_certificate_by_serial_number(signer.serial_number) is not None
        assert updated.organ(FIRST).signer.revoked
        assert len(x509.load_pem_x509_crl(updated.crl_path.read_bytes())) == 2
        served = responders.pki
        assert served is not None
        assert served.organ(FIRST).signer.revoked


def test_ecdsa_pki_and_a_fixed_base_url(tmp_path: Path) -> None:
    pki = create_dev_pki(tmp_path, ORGANS, base_url="http://127.0.0.1:8777/", key_algorithm="ecdsa-p256")
    assert pki.urls.ocsp == "http://127.0.0.1:8777/ocsp"
    cert = load(pki.organ(SECOND).signer.path)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(load(pki.root.path).public_key(), ec.EllipticCurvePublicKey)
    result = openssl_verify(pki, pki.organ(SECOND).signer.path)
    assert result.returncode == 0, result.stderr


def test_created_at_a_given_moment(tmp_path: Path) -> None:
    then = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC)
    pki = create_dev_pki(tmp_path, ORGANS[:1], now=then)
    assert pki.created == then
    assert pki.organ(FIRST).organisation.not_before == then - dt.timedelta(days=1)
    assert pki.expired.not_after == then - dt.timedelta(days=30)


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(DevPkiError, match=r"000\.00\.00\.g12"):
        create_dev_pki(tmp_path, [("000.00.00.g12", "lower case")])
    with pytest.raises(DevPkiError, match="twice"):
        create_dev_pki(tmp_path, [ORGANS[0], ORGANS[0]])
    with pytest.raises(DevPkiError, match="at least one"):
        create_dev_pki(tmp_path, [])
    with pytest.raises(DevPkiError, match="base URL"):
        create_dev_pki(tmp_path, ORGANS, base_url="ftp://example")
    assert not (tmp_path / "pki.json").exists()
    create_dev_pki(tmp_path, ORGANS[:1])
    with pytest.raises(DevPkiError, match="already holds"):
        create_dev_pki(tmp_path, ORGANS[:1])
    replaced = create_dev_pki(tmp_path, ORGANS[1:], overwrite=True)
    assert [o.code for o in replaced.organs] == [SECOND]
    assert not (tmp_path / "organs" / FIRST).exists()
    with pytest.raises(DevPkiError, match="no dev PKI"):
        DevPki.load(tmp_path / "nothing")


def test_parse_organ_and_main_init(tmp_path: Path) -> None:
    assert parse_organ("000.01.41.H41=Sở Tài chính tỉnh Nghệ An") == ORGANS[1]
    assert parse_organ("01.02.G22") == ("01.02.G22", "Cơ quan 01.02.G22")
    with pytest.raises(DevPkiError, match="G1"):
        parse_organ("000.00.00.G1=Bộ")
    written = main_init(tmp_path, ["000.00.00.G12=Bộ Tài chính", ORGANS[1]])
    paths = {w.path for w in written}
    assert tmp_path.resolve() / "organs" / SECOND / "signer.pem" in paths
    assert all(w.path.exists() for w in written)
    secret = (tmp_path / "passphrase.txt").read_text().strip()
    assert not any(secret in w.what for w in written)


# --- CLI --------------------------------------------------------------------------------------------------


def test_cli_init_lists_what_it_wrote(tmp_path: Path) -> None:
    target = tmp_path / "pki"
    result = CliRunner().invoke(
        pki_cli.app,
        [
            "init",
            str(target),
            "--organ",
            "000.00.00.G12=Bộ Tài chính",
            "--organ",
            "000.01.41.H41",
            "--base-url",
            "http://127.0.0.1:9999",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "NOT FOR PRODUCTION" in result.output
    assert "passphrase.txt" in result.output
    assert (target / "passphrase.txt").read_text().strip() not in result.output
    pki = DevPki.load(target)
    assert pki.base_url == "http://127.0.0.1:9999"
    assert pki.organ("000.01.41.H41").name == "Cơ quan 000.01.41.H41"


def test_cli_invalid_organ_code(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        pki_cli.app, ["init", str(tmp_path / "pki"), "--organ", "000.00.00.G12", "--organ", "H41-Nghe-An=Sở"]
    )
    assert result.exit_code == 1
    assert "H41-Nghe-An" in result.output
    assert not (tmp_path / "pki" / "pki.json").exists()


def test_cli_serve_without_a_pki(tmp_path: Path) -> None:
    result = CliRunner().invoke(pki_cli.app, ["serve", str(tmp_path)])
    assert result.exit_code == 1
    assert "no dev PKI" in result.output


# --- what the signing stack makes of it --------------------------------------------------------------------


def test_envelope_xades_t_by_the_sending_agency_passes(pki: DevPki) -> None:
    from node.samples import sample_monthly_report
    from schemas import build_message
    from signing.envelope import sign_envelope, verify_envelope
    from signing.report import Indication
    from signing.timestamps import HttpTimestamper

    # the sample report is sent by Sở Tài chính tỉnh Nghệ An, our second agency
    signed = sign_envelope(
        build_message(sample_monthly_report(pdf_size=2_000)),
        pki.signing_key(pki.organ(SECOND).organisation.label),
        timestamper=HttpTimestamper(pki.urls.tsa),
    )
    (envelope,) = [s for s in verify_envelope(signed, pki.trust_store()).report.signatures if s.id == "envelope"]
    assert envelope.indication == Indication.TOTAL_PASSED, envelope.reasons
    assert envelope.level == "B-T"
    assert envelope.signer is not None
    assert envelope.signer.organ_code == SECOND


@pytest.mark.parametrize(
    ("which", "indication", "sub_indication"),
    [
        ("organisation", "TOTAL_PASSED", None),
        ("revoked", "TOTAL_FAILED", "REVOKED"),
        ("expired", "INDETERMINATE", "EXPIRED"),
        ("untrusted", "INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND"),
    ],
)
def test_pades_reports(pki: DevPki, which: str, indication: str, sub_indication: str | None) -> None:
    from node.samples import sample_pdf
    from signing.pdf import PdfSigningKey, sign_pdf, verify_pdf
    from signing.timestamps import HttpTimestamper

    label = {
        "organisation": pki.organ(FIRST).organisation.label,
        "revoked": pki.revoked.label,
        "expired": pki.expired.label,
        "untrusted": pki.untrusted_signer.label,
    }[which]
    key = PdfSigningKey(pki.signing_key(label))
    # B-LT (revocation data fetched from the responders and embedded) where the certificate allows it
    long_term = pki.trust_store() if which == "organisation" else None
    timestamper = HttpTimestamper(pki.urls.tsa).pyhanko if which != "expired" else None
    pdf = sign_pdf(sample_pdf(), key, timestamper=timestamper, long_term=long_term)
    (report,) = verify_pdf("report.pdf", pdf, pki.trust_store())
    assert report.indication.value == indication, report.reasons
    assert (report.sub_indication.value if report.sub_indication else None) == sub_indication
    if which == "organisation":
        assert report.level == "B-LT"
        assert report.timestamp is not None
        assert report.timestamp.valid


def test_cli_revoke_takes_effect_and_names_unknown_labels(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from node.cli.pki import app as pki_app

    runner = CliRunner()
    directory = tmp_path / "pki"
    assert runner.invoke(pki_app, ["init", str(directory), "--organ", "000.01.41.H41=Sở Tài chính"]).exit_code == 0
    label = "organs/000.01.41.H41/signer"
    result = runner.invoke(pki_app, ["revoke", str(directory), label])
    assert result.exit_code == 0, result.output
    assert DevPki.load(directory).certificates[label].revoked
    crl = x509.load_pem_x509_crl(DevPki.load(directory).crl_path.read_bytes())
    serial = DevPki.load(directory).certificates[label].certificate().serial_number
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    unknown = runner.invoke(pki_app, ["revoke", str(directory), "organs/nobody/signer"])
    assert unknown.exit_code == 1
    assert "organs/nobody/signer" in unknown.output
