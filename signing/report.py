"""Verification reports: what a recipient, an archivist or an auditor reads about each signature.

Modelled on ETSI EN 319 102-1 (as in EU DSS): every signature gets an :class:`Indication`
(``TOTAL_PASSED``, ``TOTAL_FAILED``, ``INDETERMINATE``) and, unless it passed, a :class:`SubIndication`
saying why, plus the evidence used: signer and chain, claimed signing time, timestamp, revocation data,
and for PDFs every revision added after the signature.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from pydantic import BaseModel, ConfigDict


class Indication(StrEnum):
    TOTAL_PASSED = "TOTAL_PASSED"
    TOTAL_FAILED = "TOTAL_FAILED"
    INDETERMINATE = "INDETERMINATE"


class SubIndication(StrEnum):
    """Why a signature did not pass. ETSI EN 319 102-1 names, plus a few of our own (marked)."""

    FORMAT_FAILURE = "FORMAT_FAILURE"  # not in the signature profile we accept
    HASH_FAILURE = "HASH_FAILURE"  # a signed part changed
    SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"  # the signature value does not verify
    SIGNED_DATA_NOT_FOUND = "SIGNED_DATA_NOT_FOUND"  # a part that must be signed is not (or is missing)
    NO_SIGNING_CERTIFICATE_FOUND = "NO_SIGNING_CERTIFICATE_FOUND"
    NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"  # no path to a trusted root
    REVOKED = "REVOKED"
    REVOCATION_UNKNOWN = "REVOCATION_UNKNOWN"  # revocation status could not be established (TRY_LATER)
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    CHAIN_CONSTRAINTS_FAILURE = "CHAIN_CONSTRAINTS_FAILURE"
    SIG_CONSTRAINTS_FAILURE = "SIG_CONSTRAINTS_FAILURE"  # key usage, algorithm or key size not allowed
    TIMESTAMP_FAILURE = "TIMESTAMP_FAILURE"  # ours: a timestamp that does not match or verify
    SENDER_MISMATCH = "SENDER_MISMATCH"  # ours: the signer is not the organisation in From
    MODIFIED_AFTER_SIGNING = "MODIFIED_AFTER_SIGNING"  # ours: a later PDF revision changes content


# ``--at`` asked for it; a trusted signature timestamp proves the signature existed then; neither: now.
ValidationTimeSource = Literal["requested", "timestamp", "current"]


class CertificateInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: str
    issuer: str
    serial: str  # hex
    not_before: datetime
    not_after: datetime
    sha256: str
    organ_code: str | None = None  # the UID attribute, where Liên thông certificates carry the mã định danh

    @classmethod
    def of(cls, cert: x509.Certificate) -> CertificateInfo:
        return _certificate_info(cert.public_bytes(Encoding.DER))

    @property
    def common_name(self) -> str:
        for part in self.subject.split(","):
            if part.startswith("CN="):
                return part[3:]
        return self.subject


class RevocationEvidence(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["ocsp", "crl"]
    certificate_serial: str
    status: Literal["good", "revoked", "unknown"]
    source: str = ""  # URL it came from, or "embedded"
    issued_at: datetime | None = None
    revoked_at: datetime | None = None
    der_sha256: str = ""  # the response/CRL itself is archived by storage, addressed by this hash


class TimestampInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    time: datetime
    tsa: str
    imprint_matches: bool
    valid: bool
    problem: str = ""


class PdfRevision(BaseModel):
    """An incremental update made after a signature."""

    model_config = ConfigDict(frozen=True)

    index: int
    allowed: bool
    modification_level: str  # NONE, LTA_UPDATES, FORM_FILLING, ANNOTATIONS, OTHER
    description: str = ""


class SignatureReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str  # "envelope", "attachment:<name>#<field>", …
    format: Literal["XAdES", "XMLDSig", "PAdES", "CMS", "RFC3161"]
    level: str = ""  # B-B, B-T, B-LT, B-LTA
    indication: Indication
    sub_indication: SubIndication | None = None
    reasons: tuple[str, ...] = ()  # plain sentences for people, most important first
    signer: CertificateInfo | None = None
    chain: tuple[CertificateInfo, ...] = ()
    claimed_signing_time: datetime | None = None
    validation_time: datetime | None = None
    validation_time_source: ValidationTimeSource = "current"
    timestamp: TimestampInfo | None = None
    revocation: tuple[RevocationEvidence, ...] = ()
    signed_parts: tuple[str, ...] = ()  # what the signature covers
    revisions_after: tuple[PdfRevision, ...] = ()
    role: str = ""  # signer / organisation / copy for PDF signatures


class VerificationReport(BaseModel):
    """The report on one file: every signature found in it (an envelope's attached PDFs included)."""

    model_config = ConfigDict(frozen=True)

    document: str
    document_sha256: str
    kind: Literal["edxml", "pdf"]
    verified_at: datetime
    signatures: tuple[SignatureReport, ...]

    @property
    def indication(self) -> Indication:
        """TOTAL_PASSED only if there is a signature and every one passed; any failure beats indeterminate."""
        if not self.signatures:
            return Indication.TOTAL_FAILED
        found = {s.indication for s in self.signatures}
        if Indication.TOTAL_FAILED in found:
            return Indication.TOTAL_FAILED
        if Indication.INDETERMINATE in found:
            return Indication.INDETERMINATE
        return Indication.TOTAL_PASSED

    @property
    def exit_code(self) -> int:
        """0 all passed, 1 one failed, 2 indeterminate (the ``lienthong verify`` contract)."""
        return {Indication.TOTAL_PASSED: 0, Indication.TOTAL_FAILED: 1, Indication.INDETERMINATE: 2}[self.indication]


@functools.lru_cache(maxsize=1024)
def _certificate_info(der: bytes) -> CertificateInfo:
    # The same few signers' certificates are described in report after report, and formatting names
    # (RFC 4514) costs more than all the rest of a path-cache hit; the model is frozen, so it is shared.
    cert = x509.load_der_x509_certificate(der)
    uid = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=hashlib.sha256(der).hexdigest(),
        organ_code=str(uid[0].value) if uid else None,
    )
