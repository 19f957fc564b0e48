"""RFC 3161 timestamps: a client for a TSA over HTTP, and verification of timestamp tokens."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data

from signing.errors import TimestampError
from signing.report import TimestampInfo
from signing.trust import TrustStore, to_asn1


class HttpTimestamper:
    """A timestamp authority reached over HTTP (RFC 3161, ``application/timestamp-query``)."""

    def __init__(self, url: str, *, timeout: int = 10) -> None:
        self.url = url
        self._timeout = timeout

    @property
    def pyhanko(self) -> TimeStamper:
        """The same TSA as a pyHanko timestamper, for PAdES."""
        return RequestsHTTPTimeStamper(self.url, timeout=self._timeout)

    def timestamp(self, digest: bytes) -> bytes:
        """A DER TimeStampToken over the SHA-256 ``digest``."""

        async def request() -> cms.ContentInfo:
            return await RequestsHTTPTimeStamper(self.url, timeout=self._timeout).async_timestamp(digest, "sha256")

        try:
            return asyncio.run(request()).dump()  # type: ignore[no-any-return]
        except Exception as e:  # aiohttp, TSA refusals: all mean "no timestamp"
            raise TimestampError(f"timestamp authority {self.url} did not answer with a timestamp: {e}") from e


def token_time(token: bytes) -> datetime:
    """genTime of a TimeStampToken, without verifying it."""
    content = cms.ContentInfo.load(token)["content"]
    info = content["encap_content_info"]["content"].parsed
    if not isinstance(info, tsp.TSTInfo):
        raise ValueError("not a timestamp token: SignedData does not hold a TSTInfo")
    return info["gen_time"].native  # type: ignore[no-any-return]


IMPRINT_ALGORITHMS = frozenset({"sha256", "sha384", "sha512"})


def subject_name(cert: Any) -> str:
    """``CN (O)`` of an asn1crypto certificate (the organisation left out when the name already says it)."""
    native = cert.subject.native
    name, organisation = native.get("common_name"), native.get("organization_name")
    if not name:
        return str(cert.subject.human_friendly)
    return f"{name} ({organisation})" if organisation and organisation not in name else str(name)


def verify_timestamp_token(
    token: bytes,
    data_digest: bytes,
    trust: TrustStore,
    *,
    digest_algorithm: str = "sha256",
    at: datetime | None = None,
) -> TimestampInfo:
    """Check that ``token`` is a valid TSA signature over ``data_digest``, by a trusted TSA.

    ``digest_algorithm`` (sha256, sha384 or sha512) is the one ``data_digest`` was computed with; the
    token's imprint must use the same. A TSA certificate the token does not carry is looked up in ``trust``.
    The TSA's certificate is validated at ``at``, by default now (see :func:`check_timestamp_token`).
    """
    return check_timestamp_token(token, data_digest, trust, digest_algorithm=digest_algorithm, at=at).info


@dataclass(frozen=True)
class TimestampCheck:
    """A timestamp token checked: what the report says of it, and whether only its TSA's trust is missing."""

    info: TimestampInfo
    # readable, covering the data (imprint) and its own signature verifying: a token that is sound but not
    # ``info.valid`` comes from a TSA not trusted at the validation time (unknown, revoked, expired)
    sound: bool


def check_timestamp_token(
    token: bytes,
    data_digest: bytes,
    trust: TrustStore,
    *,
    digest_algorithm: str = "sha256",
    at: datetime | None = None,
) -> TimestampCheck:
    """:func:`verify_timestamp_token`, telling a token from an untrusted TSA apart from a broken one.

    The TSA's certificate is validated at ``at`` (a time asked for), by default **now**, not at the token's
    own genTime (ETSI EN 319 102-1, time-stamp validation): the token is what would prove a time, so
    nothing proves it existed before now; a TSA certificate revoked or expired since then makes it prove
    nothing. (Proof of existence from a later timestamp, as in an archive timestamp, is not looked for.)
    """
    if digest_algorithm not in IMPRINT_ALGORITHMS:
        raise ValueError(f"timestamp imprints with {digest_algorithm} are not accepted")
    try:
        content = cms.ContentInfo.load(token)
        signed_data = _with_tsa_certificate(content["content"], trust)
        gen_time = token_time(token)
    except (ValueError, KeyError, TypeError) as e:
        unreadable = TimestampInfo(
            time=datetime.fromtimestamp(0).astimezone(),
            tsa="?",
            imprint_matches=False,
            valid=False,
            problem=f"unreadable timestamp token: {e}",
        )
        return TimestampCheck(unreadable, sound=False)

    def expected(algorithm: str) -> bytes:
        if algorithm != digest_algorithm:
            raise SignatureValidationError(f"timestamp imprint uses {algorithm}; {digest_algorithm} expected")
        return data_digest

    context = trust.validation_context(at)
    try:
        status = asyncio.run(validate_tst_signed_data(signed_data, context, expected))
    except SignatureValidationError as e:
        broken = TimestampInfo(time=gen_time, tsa="?", imprint_matches=False, valid=False, problem=str(e))
        return TimestampCheck(broken, sound=False)
    cert = status.get("signing_cert")
    tsa = subject_name(cert) if cert is not None else "?"
    intact, valid = status.get("intact", False), status.get("valid", False)
    # ``trusted`` is a property of pyHanko's status classes, not one of these keyword arguments
    indic = status.get("trust_problem_indic")
    trusted = indic is None and status.get("validation_path") is not None
    problem = (
        ""
        if intact and valid and trusted
        else (
            "the timestamp does not cover this signature (imprint mismatch)"
            if not intact
            else "the timestamp's own signature does not verify"
            if not valid
            else "the timestamp authority is not trusted"
            + (f" at the validation time ({indic.name})" if indic is not None else "")
        )
    )
    info = TimestampInfo(time=gen_time, tsa=tsa, imprint_matches=bool(intact), valid=not problem, problem=problem)
    return TimestampCheck(info, sound=bool(intact and valid))


def _with_tsa_certificate(signed_data: cms.SignedData, trust: TrustStore) -> cms.SignedData:
    """``signed_data`` with the TSA certificate added from ``trust`` when the token does not carry it.

    RFC 3161 lets a TSA leave its certificate out (certReq false); pyHanko needs it in the bag. Only the
    certificate named by the SignerInfo's sid is added; the bag is outside what the TSA signed.
    """
    sid = signed_data["signer_infos"][0]["sid"]
    carried = [c.chosen for c in signed_data["certificates"] or () if c.name == "certificate"]

    def named(cert: asn1_x509.Certificate) -> bool:
        if sid.name == "issuer_and_serial_number":
            return bool(
                cert.issuer == sid.chosen["issuer"] and cert.serial_number == sid.chosen["serial_number"].native
            )
        return bool(cert.key_identifier == sid.chosen.native)

    if any(named(c) for c in carried):
        return signed_data
    known = [to_asn1(c) for c in (*trust.intermediates, *trust.roots)]
    found = next((c for c in known if named(c)), None)
    if found is None:
        return signed_data
    extended = signed_data.copy()
    extended["certificates"] = [*(signed_data["certificates"] or ()), cms.CertificateChoices({"certificate": found})]
    return extended


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
