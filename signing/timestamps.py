"""RFC 3161 timestamps: a client for a TSA over HTTP, and verification of timestamp tokens."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime

from asn1crypto import cms, tsp
from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data

from signing.errors import SignError
from signing.report import TimestampInfo
from signing.trust import TrustStore


class HttpTimestamper:
    """A timestamp authority reached over HTTP (RFC 3161, ``application/timestamp-query``)."""

    def __init__(self, url: str, *, timeout: int = 10) -> None:
        self.url = url
        self._timeout = timeout

    @property
    def pyhanko(self) -> TimeStamper:
        """The same TSA as a pyHanko timestamper, for PAdES."""
        return HTTPTimeStamper(self.url, timeout=self._timeout)

    def timestamp(self, digest: bytes) -> bytes:
        """A DER TimeStampToken over the SHA-256 ``digest``."""

        async def request() -> cms.ContentInfo:
            return await HTTPTimeStamper(self.url, timeout=self._timeout).async_timestamp(digest, "sha256")

        try:
            return asyncio.run(request()).dump()  # type: ignore[no-any-return]
        except Exception as e:  # aiohttp, TSA refusals: all mean "no timestamp"
            raise SignError(f"timestamp authority {self.url} did not answer with a timestamp: {e}") from e


def token_time(token: bytes) -> datetime:
    """genTime of a TimeStampToken, without verifying it."""
    content = cms.ContentInfo.load(token)["content"]
    info = content["encap_content_info"]["content"].parsed
    if not isinstance(info, tsp.TSTInfo):
        raise ValueError("not a timestamp token: SignedData does not hold a TSTInfo")
    return info["gen_time"].native  # type: ignore[no-any-return]


def verify_timestamp_token(token: bytes, data_digest: bytes, trust: TrustStore) -> TimestampInfo:
    """Check that ``token`` is a valid TSA signature over ``data_digest`` (SHA-256), by a trusted TSA."""
    try:
        content = cms.ContentInfo.load(token)
        signed_data = content["content"]
        gen_time = token_time(token)
    except (ValueError, KeyError, TypeError) as e:
        return TimestampInfo(
            time=datetime.fromtimestamp(0).astimezone(),
            tsa="?",
            imprint_matches=False,
            valid=False,
            problem=f"unreadable timestamp token: {e}",
        )

    def expected(algorithm: str) -> bytes:
        if algorithm != "sha256":
            raise SignatureValidationError(f"timestamp imprint uses {algorithm}; SHA-256 expected")
        return data_digest

    context = trust.validation_context(gen_time)
    try:
        status = asyncio.run(validate_tst_signed_data(signed_data, context, expected))
    except SignatureValidationError as e:
        return TimestampInfo(time=gen_time, tsa="?", imprint_matches=False, valid=False, problem=str(e))
    cert = status.get("signing_cert")
    tsa = cert.subject.human_friendly if cert is not None else "?"
    intact, valid, trusted = status.get("intact", False), status.get("valid", False), status.get("trusted", False)
    problem = (
        ""
        if intact and valid and trusted
        else (
            "the timestamp does not cover this signature (imprint mismatch)"
            if not intact
            else "the timestamp's own signature does not verify"
            if not valid
            else "the timestamp authority is not trusted"
        )
    )
    return TimestampInfo(time=gen_time, tsa=tsa, imprint_matches=bool(intact), valid=not problem, problem=problem)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
