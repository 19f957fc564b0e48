"""Errors raised by the ``adapters`` package."""

from __future__ import annotations

from typing import Any


class AdaptersError(Exception):
    """Base of every error raised by ``adapters``."""


# -- request authentication (RFC 9421) ------------------------------------------------------------------


class HttpSignatureError(AdaptersError):
    """A request's signature was refused; ``http_status`` is what the server answers, ``reason`` says why.

    ``code`` is a short stable slug for logs and metrics (the reason text may change).
    """

    http_status: int = 401
    code: str = "bad-signature"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignatureMissingError(HttpSignatureError):
    """No ``Signature-Input``/``Signature`` header: the request is not signed."""

    code = "signature-missing"


class SignatureInvalidError(HttpSignatureError):
    """Unknown key, wrong key, wrong algorithm, insufficient coverage, or a signature that does not verify."""

    code = "signature-invalid"


class MisaddressedRequestError(HttpSignatureError):
    """No ``Lienthong-To`` header (a protocol v1 request), or one naming another node than this one: a
    request signed for one node and sent (replayed) to another."""

    code = "misaddressed"


class SignatureExpiredError(HttpSignatureError):
    """``created`` outside the accepted clock skew, or ``expires`` in the past."""

    code = "signature-expired"


class ReplayedRequestError(HttpSignatureError):
    """The nonce was already used by this key within the replay window."""

    code = "replayed"


class MalformedSignatureError(HttpSignatureError):
    """Signature headers that cannot be parsed, duplicate labels, oversized headers, missing Content-Digest."""

    http_status = 400
    code = "malformed-signature"


class ContentDigestMismatchError(HttpSignatureError):
    """The body is not the one the Content-Digest (and so the signature) describes."""

    http_status = 400
    code = "digest-mismatch"


# -- node ↔ axis client ---------------------------------------------------------------------------------


class DeliveryError(AdaptersError):
    """A call to another node failed. ``status`` is the HTTP status when there was an answer."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableDeliveryError(DeliveryError):
    """Trying again later may succeed: no answer, a timeout, 5xx, 429/503 (``retry_after`` seconds when given).

    Every call of the protocol is idempotent, so a retry after this error is always safe; the backoff
    (exponential, with jitter) is the caller's job.
    """

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """The other node refused the request for good (4xx): sending the same request again will not help.

    ``problem`` is the RFC 9457 problem document when there was one; ``problem_type`` and ``detail`` are
    taken from it. ``signed`` says whether the answer carried a valid node signature (the exchange API
    signs its successful answers; error answers may come from a proxy and be unsigned).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        problem: dict[str, Any] | None = None,
        signed: bool = False,
    ) -> None:
        super().__init__(message, status=status)
        self.problem = problem
        self.signed = signed
        self.problem_type: str | None = None
        self.detail: str | None = None
        if problem is not None:
            ptype, detail = problem.get("type"), problem.get("detail")
            self.problem_type = ptype if isinstance(ptype, str) else None
            self.detail = detail if isinstance(detail, str) else None


class ResponseSignatureError(RetryableDeliveryError):
    """An answer is not provably from the configured node, or its body is not intact.

    It is retryable because every call is idempotent and tampering in transit may stop; if it persists
    the configured public key of the other node is probably wrong, which needs an operator.
    """

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(f"the answer is not authentic: {reason}", status=status)
        self.reason = reason
