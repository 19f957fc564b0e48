"""Certificates, CRLs and key files of the development PKI (see :mod:`signing.devpki`).

Everything here is built with ``cryptography`` from explicit parameters: which key, which name, which
issuer, which URLs. :mod:`signing.devpki` decides what to issue; this module only knows how.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID, ObjectIdentifier

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
KeyAlgorithm = Literal["rsa2048", "ecdsa-p256"]
Role = Literal["root", "ca", "organisation", "signer", "ocsp", "tsa"]

# A policy OID of our own without a registered arc: ITU-T X.667 lets anyone derive one from a UUID
# (2.25.<the UUID as an integer>). It marks every certificate and timestamp of the dev PKI, so that a
# production trust configuration can refuse it outright.
DEV_POLICY_OID = ObjectIdentifier("2.25.197363447711306592386734436436355218946")
DEV_POLICY_NOTICE = "Liên thông development PKI — NOT FOR PRODUCTION"

# Extended key usages a document-signing certificate carries so that PDF readers and validators accept it:
# id-kp-documentSigning (RFC 9336), emailProtection (what Acrobat has long accepted) and Adobe's
# "Authentic Documents Trust" purpose.
DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
ADOBE_AUTHENTIC_DOCUMENTS = ObjectIdentifier("1.2.840.113583.1.1.5")

UB_NAME = 64  # RFC 5280 upper bound of CommonName and OrganizationName


def new_key(algorithm: KeyAlgorithm) -> PrivateKey:
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def fit(text: str, limit: int = UB_NAME) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, for name attributes with an upper bound."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def name(
    common_name: str, organisation: str, *, organ_code: str | None = None, country: str | None = "VN"
) -> x509.Name:
    """C, O, CN and, for a Liên thông agency, the organ code as UID (0.9.2342.19200300.100.1.1)."""
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, country)] if country else []
    attrs += [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, fit(organisation)),
        x509.NameAttribute(NameOID.COMMON_NAME, fit(common_name)),
    ]
    if organ_code is not None:
        attrs.append(x509.NameAttribute(NameOID.USER_ID, organ_code))
    return x509.Name(attrs)


@dataclass(frozen=True)
class Urls:
    """Where a certificate says its issuer's certificate, OCSP responder and CRL are."""

    ca_issuers: str | None = None
    ocsp: str | None = None
    crl: str | None = None


def _key_usage(*, ca: bool, non_repudiation: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=non_repudiation,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _policies() -> x509.CertificatePolicies:
    notice = x509.UserNotice(notice_reference=None, explicit_text=DEV_POLICY_NOTICE)
    return x509.CertificatePolicies([x509.PolicyInformation(DEV_POLICY_OID, [notice])])


def issue(
    *,
    role: Role,
    subject: x509.Name,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    issuer: tuple[x509.Certificate, PrivateKey] | None,
    self_key: PrivateKey | None = None,
    serial: int,
    not_before: dt.datetime,
    not_after: dt.datetime,
    urls: Urls | None = None,
    policies: bool = True,
) -> x509.Certificate:
    """One certificate. ``issuer`` None means self-signed with ``self_key``.

    Roles: ``root`` and ``ca`` (keyCertSign, cRLSign; a ``ca`` issues only end-entity certificates),
    ``organisation`` and ``signer`` (digitalSignature + nonRepudiation, document-signing EKUs), ``ocsp``
    (OCSPSigning EKU and id-pkix-ocsp-nocheck), ``tsa`` (timeStamping EKU, critical, as RFC 3161 requires).
    """
    if issuer is None:
        if self_key is None:
            raise ValueError("a self-signed certificate needs its own key")
        issuer_name, signing_key = subject, self_key
    else:
        issuer_name, signing_key = issuer[0].subject, issuer[1]
    ca = role in ("root", "ca")
    urls = urls or Urls()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=ca, path_length=(1 if role == "root" else 0) if ca else None), critical=True
        )
        .add_extension(_key_usage(ca=ca, non_repudiation=role in ("organisation", "signer", "tsa")), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
    )
    if role in ("organisation", "signer"):
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION, ADOBE_AUTHENTIC_DOCUMENTS]),
            critical=False,
        )
    elif role == "ocsp":
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
    elif role == "tsa":
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
    access = []
    if urls.ocsp:
        access.append(
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(urls.ocsp))
        )
    if urls.ca_issuers:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(urls.ca_issuers)
            )
        )
    if access:
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    if urls.crl:
        point = x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(urls.crl)], relative_name=None, reasons=None, crl_issuer=None
        )
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    if policies and role != "root":
        builder = builder.add_extension(_policies(), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


@dataclass(frozen=True)
class Revocation:
    serial: int
    revoked_at: dt.datetime
    reason: x509.ReasonFlags


def build_crl(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    revoked: Iterable[Revocation],
    *,
    this_update: dt.datetime,
    next_update: dt.datetime,
    number: int,
) -> x509.CertificateRevocationList:
    """A full CRL of ``issuer`` (v2, CRL number and AKI, a reason code per entry)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    for entry in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
            .add_extension(x509.CRLReason(entry.reason), critical=False)
            .build()
        )
    return builder.sign(issuer_key, hashes.SHA256())


# --- files ----------------------------------------------------------------------------------------------


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only, whatever the umask, even when it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key: PrivateKey, passphrase: bytes) -> bytes:
    """PKCS#8, encrypted with ``passphrase`` (AES-256-CBC, PBKDF2)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def load_key_pem(data: bytes, passphrase: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(data, passphrase)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"unexpected key type {type(key).__name__}")
    return key


def pkcs12_bytes(
    friendly_name: str, key: PrivateKey, cert: x509.Certificate, chain: Sequence[x509.Certificate], passphrase: bytes
) -> bytes:
    """PKCS#12 with PBES2 (AES-256-CBC, PBKDF2-SHA256) and an HMAC-SHA256 MAC: OpenSSL 3 reads it without legacy.

    ``friendly_name`` must be ASCII: OpenSSL copies it byte by byte into a BMPString.
    """
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(passphrase)
    )
    return pkcs12.serialize_key_and_certificates(friendly_name.encode("ascii"), key, cert, list(chain), encryption)
