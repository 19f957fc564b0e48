"""The client side of the node ↔ axis protocol v2 (docs/protocol.md), over httpx, synchronous.

Every request is signed with the node's key (adapters.httpsig) for the node it goes to (``peer_id``, the signed
``Lienthong-To`` header: no other node accepts it); every successful answer must be signed by the configured
axis key and bound to the request, or the call fails with ResponseSignatureError. Error
answers are classified by whether a retry can help; retrying (exponential backoff with jitter, a maximum
age) is the caller's job, and always safe: every call is idempotent.

The same client pushes to an agency node (the axis → agency direction): ``send_envelope`` against its URL.
"""

from __future__ import annotations

import base64
import json
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256
from types import TracebackType
from typing import Literal, TypeVar

import httpx
from pydantic import Base64Bytes, BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapters._private.http_errors import error_for, error_for_problem
from adapters.errors import PermanentDeliveryError, ResponseSignatureError, RetryableDeliveryError
from adapters.httpsig import NodeKey, NodeSigningAuth, PublicKeyInput, load_public_key, verify_response

__all__ = [
    "Ack",
    "AxisClient",
    "FetchedEnvelope",
    "InboxItem",
    "SendOutcome",
    "SendReceipt",
    "SentRecipient",
    "SentReport",
]

EXCHANGE = "/api/v1/exchange"
MESSAGE_ID = re.compile(r"^[0-9a-f]{64}$")
# Delivery ids go into the URL path: only unreserved characters, so nothing can change which path is signed
# and called ("..", "/", "?", "%" are refused).
DELIVERY_ID = re.compile(r"^[A-Za-z0-9._~-]{1,200}$")
_HEX64 = r"^[0-9a-f]{64}$"
_KNOWN_SHA256 = 10_000  # listing entries remembered to check fetched bytes against
_M = TypeVar("_M", bound=BaseModel)


class SendReceipt(BaseModel):
    """The axis has the envelope: ``accepted`` now, or ``duplicate`` (it had it already; nothing was redone)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    message_id: str = Field(pattern=_HEX64)
    status: Literal["accepted", "duplicate"]
    recipients: tuple[str, ...] = ()


class InboxItem(BaseModel):
    """One envelope waiting for an organisation this node serves."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    delivery_id: str = Field(pattern=DELIVERY_ID.pattern)
    message_id: str = Field(pattern=_HEX64)
    sender: str = Field(min_length=1, max_length=64)
    recipient: str = Field(min_length=1, max_length=64)
    kind: Literal["document", "status"]
    size: int = Field(ge=0)
    sha256: str = Field(pattern=_HEX64)
    received_at: datetime
    # The bytes themselves when the listing was asked to inline them (``inline`` > 0) and they fit.
    data: Base64Bytes | None = Field(default=None, repr=False)


class _Inbox(BaseModel):
    model_config = ConfigDict(extra="ignore")
    items: list[InboxItem]


class _BatchItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    message_id: str = Field(pattern=_HEX64)
    status: Literal["accepted", "duplicate", "refused"]
    recipients: tuple[str, ...] = ()
    problem: dict[str, object] | None = None


MAX_FURTHER = 16  # axes one answer may nest (a route is at most max_hops long, 8 by default)


class SentRecipient(BaseModel):
    """What became of a message for one recipient, at the axis that answers (``at``).

    ``state``: ``queued`` (waiting for ``node`` to fetch it), ``done`` (``node`` stored and answered it),
    ``failed`` (``node`` could not take it: ``reason``), ``expired`` (``node`` did not fetch it within the
    maximum age), or ``forwarded`` to the parent axis ``node`` — then ``forward`` is that hand-over's state
    (``pending``, ``done``, ``dead`` with ``reason``) and, once the parent has it (``done``), ``further`` is what
    the parent axis said became of it there (the same shape, nested once per axis), or ``None`` while the
    answering axis has not heard from its parent yet.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")
    recipient: str = Field(min_length=1, max_length=64)
    at: str = Field(min_length=1, max_length=128)
    state: str = Field(min_length=1, max_length=20)
    node: str | None = Field(default=None, max_length=128)
    forward: str | None = Field(default=None, max_length=20)
    reason: str | None = Field(default=None, max_length=4000)
    since: datetime | None = None
    further: SentRecipient | None = None

    @model_validator(mode="after")
    def _not_too_deep(self) -> SentRecipient:
        depth, entry = 0, self.further
        while entry is not None:
            depth += 1
            if depth > MAX_FURTHER:
                raise ValueError(f"more than {MAX_FURTHER} axes nested in one answer")
            entry = entry.further
        return self

    @property
    def handed_on(self) -> bool:
        """Forwarded, and the parent axis has it: its fate is ``further``'s."""
        return self.state == "forwarded" and self.forward == "done"

    @property
    def failed(self) -> bool:
        """It will not reach the recipient: refused, expired, or a forward dead-lettered, here or further up."""
        if self.handed_on:
            return self.further is not None and self.further.failed
        return self.state in ("failed", "expired") or (self.state == "forwarded" and self.forward == "dead")

    @property
    def final(self) -> bool:
        """Nothing more will change, here or further up (a forward the parent has is final when its fate there is)."""
        if self.handed_on:
            return self.further is not None and self.further.final
        return self.state in ("done", "failed", "expired") or (self.state == "forwarded" and self.forward == "dead")

    def deepest(self) -> SentRecipient:
        """The answer of the last axis that knows: this one, or ``further``'s deepest."""
        entry = self
        while entry.further is not None:
            entry = entry.further
        return entry


class SentReport(BaseModel):
    """The axis's answer about one message the calling node handed over (``GET /exchange/sent/{id}``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    message_id: str = Field(pattern=_HEX64)
    sender: str = Field(min_length=1, max_length=64)
    accepted_at: datetime
    recipients: tuple[SentRecipient, ...] = ()


class _SentReports(BaseModel):
    model_config = ConfigDict(extra="ignore")
    messages: list[SentReport]
    unknown: list[str] = Field(default_factory=list)


class _BatchReceipt(BaseModel):
    model_config = ConfigDict(extra="ignore")
    results: list[_BatchItem]


class _InboxPoll(BaseModel):
    model_config = ConfigDict(extra="ignore")
    acknowledged: int = Field(ge=0)
    unknown: list[str] = Field(default_factory=list)
    items: list[InboxItem]


class _AckReceipt(BaseModel):
    model_config = ConfigDict(extra="ignore")
    acknowledged: int = Field(ge=0)
    unknown: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Ack:
    """One delivery handled: ``done`` (stored and answered) or ``fail`` (refused, with ``reason``)."""

    delivery_id: str
    outcome: Literal["done", "fail"]
    reason: str | None = None


# The answer for one envelope of a batch: its receipt, or the error a single send would have raised.
SendOutcome = SendReceipt | PermanentDeliveryError | RetryableDeliveryError


@dataclass(frozen=True)
class FetchedEnvelope:
    """The exact bytes of a delivery, checked against the signed digest and the listing's sha256."""

    data: bytes
    message_id: str
    delivery_id: str


class AxisClient:
    """A signed, verifying client of one axis (or of an agency node, for pushes).

    ``axis_public_key`` is the other node's Ed25519 public key (raw 32 bytes, PEM, or a key object), ``peer_id``
    its node id: every request names it (``Lienthong-To``, signed), and the other node refuses a request that
    names another, so a request cannot be replayed to a third node that knows this one.
    ``require_signed_errors``: error answers from the exchange API are expected to be signed too; when they
    are not (a proxy's 502, or a server that signs only successes) they are trusted for classification
    unless this is set, in which case an unsigned error answer raises ResponseSignatureError.
    """

    def __init__(
        self,
        base_url: str,
        node_key: NodeKey,
        axis_public_key: PublicKeyInput,
        *,
        peer_id: str,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        require_signed_errors: bool = False,
        max_response_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.node_key = node_key
        self.peer_id = peer_id
        self.axis_public_key = load_public_key(axis_public_key)
        self.require_signed_errors = require_signed_errors
        self.max_response_bytes = max_response_bytes
        self._known: OrderedDict[str, InboxItem] = OrderedDict()
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=NodeSigningAuth(node_key, peer_id),
            timeout=timeout,
            transport=transport,
            follow_redirects=False,  # a redirect would need a new signature for another path; refuse instead
            # identity: the signed Content-Digest is over the bytes as sent; no content-coding in between.
            headers={"User-Agent": "lienthong-axis-client/1", "Accept-Encoding": "identity"},
        )

    # -- the protocol ----------------------------------------------------------------------------------

    def send_envelope(self, data: bytes, message_id: str) -> SendReceipt:
        """Hand a signed envelope to the axis (or push it to an agency node). Idempotent by ``message_id``."""
        if not MESSAGE_ID.match(message_id):
            raise ValueError("message_id must be 64 lowercase hex digits")
        status, body, _ = self._call(
            "POST",
            f"{EXCHANGE}/envelopes",
            what=f"sending {message_id[:16]}",
            content=data,
            headers={"Content-Type": "application/xml", "Lienthong-Message-Id": message_id},
            expect=(200, 202),
        )
        receipt = self._model(SendReceipt, body, "the receipt")
        if receipt.message_id != message_id:
            raise RetryableDeliveryError(
                f"the receipt names message {receipt.message_id[:16]}, not {message_id[:16]}", status=status
            )
        return receipt

    def send_envelopes(self, envelopes: Sequence[tuple[bytes, str]]) -> list[SendOutcome]:
        """Hand several envelopes over in one request (``POST /envelopes/batch``); one outcome each, in order.

        Each envelope is judged on its own, exactly as ``send_envelope`` would be: the outcome is its receipt
        or the error a single send would have raised. An error for the whole request is raised as usual.
        """
        if not envelopes:
            return []
        for _, message_id in envelopes:
            if not MESSAGE_ID.match(message_id):
                raise ValueError("message_id must be 64 lowercase hex digits")
        payload = {
            "envelopes": [
                {"message_id": message_id, "data": base64.b64encode(data).decode("ascii")}
                for data, message_id in envelopes
            ]
        }
        body = self._post_json(f"{EXCHANGE}/envelopes/batch", payload, what=f"sending {len(envelopes)} envelopes")
        results = self._model(_BatchReceipt, body, "the batch receipt").results
        if [r.message_id for r in results] != [m for _, m in envelopes]:
            raise RetryableDeliveryError("the batch receipt does not answer the envelopes sent, in order", status=200)
        outcomes: list[SendOutcome] = []
        for r in results:
            if r.status == "refused":
                outcomes.append(error_for_problem(r.problem or {}, what=f"sending {r.message_id[:16]}"))
            else:
                outcomes.append(SendReceipt(message_id=r.message_id, status=r.status, recipients=r.recipients))
        return outcomes

    def next_batch(
        self, acks: Sequence[Ack] = (), limit: int = 50, *, wait: float = 0.0, inline: int = 0
    ) -> tuple[list[InboxItem], list[str]]:
        """Acknowledge ``acks`` and list what waits next, in one request (``POST /inbox``).

        Returns the items (as :meth:`inbox` does, inlined bytes checked) and the acknowledged ids the axis
        did not know. The acknowledgements are applied before the listing, so it never lists them again.
        """
        if not 1 <= limit <= 500:
            raise ValueError("limit must be 1..500")
        self._check_acks(acks)
        payload = {
            "acks": [{"delivery_id": a.delivery_id, "outcome": a.outcome, "reason": a.reason} for a in acks],
            "limit": limit,
            "wait": wait,
            "inline": inline,
        }
        body = self._post_json(f"{EXCHANGE}/inbox", payload, what="acknowledging and listing the inbox")
        answer = self._model(_InboxPoll, body, "the inbox")
        for a in acks:
            self._known.pop(a.delivery_id, None)
        return self._remember(answer.items), answer.unknown

    def inbox(self, limit: int = 50, *, wait: float = 0.0, inline: int = 0) -> list[InboxItem]:
        """What waits for this node's organisations, oldest first; ``wait`` > 0 long-polls up to that many seconds.

        ``inline`` > 0 asks for the bytes in the listing, up to that many bytes in all: an item that came with
        its ``data`` (checked against its ``sha256`` here) need not be fetched.
        """
        if not 1 <= limit <= 500:
            raise ValueError("limit must be 1..500")
        params: dict[str, str | int | float] = {"limit": limit}
        if wait > 0:
            params["wait"] = wait
        if inline > 0:
            params["inline"] = inline
        _, body, _ = self._call("GET", f"{EXCHANGE}/inbox", what="listing the inbox", params=params, expect=(200,))
        return self._remember(self._model(_Inbox, body, "the inbox").items)

    def _remember(self, items: list[InboxItem]) -> list[InboxItem]:
        """Check inlined bytes, and keep each listing to check later fetches against."""
        for item in items:
            if item.data is not None and sha256(item.data).hexdigest() != item.sha256:
                raise ResponseSignatureError(
                    f"delivery {item.delivery_id}: the inlined bytes do not hash to the listed sha256", status=200
                )
            self._known[item.delivery_id] = item
            self._known.move_to_end(item.delivery_id)
        while len(self._known) > _KNOWN_SHA256:
            self._known.popitem(last=False)
        return items

    def fetch(self, delivery_id: str, *, expected: InboxItem | None = None) -> FetchedEnvelope:
        """The exact bytes of one delivery, checked against the signed Content-Digest and the listing.

        The listing is the one passed as ``expected`` or, by default, the last ``inbox()`` that named
        ``delivery_id``: its sha256 and message id must match what arrives.
        """
        self._check_delivery_id(delivery_id)
        _, body, headers = self._call(
            "GET", f"{EXCHANGE}/inbox/{delivery_id}", what=f"fetching {delivery_id}", expect=(200,)
        )
        message_id = headers.get("lienthong-message-id", "")
        if not MESSAGE_ID.match(message_id):
            raise ResponseSignatureError("the delivery has no valid Lienthong-Message-Id", status=200)
        listed = expected or self._known.get(delivery_id)
        if listed is not None:
            actual = sha256(body).hexdigest()
            if actual != listed.sha256:
                raise ResponseSignatureError(
                    f"delivery {delivery_id}: the bytes hash to {actual[:16]}, the inbox listed {listed.sha256[:16]}"
                )
            if message_id != listed.message_id:
                raise ResponseSignatureError(
                    f"delivery {delivery_id}: message id {message_id[:16]}, the inbox listed {listed.message_id[:16]}"
                )
        return FetchedEnvelope(body, message_id, delivery_id)

    def ack(self, delivery_id: str, outcome: Literal["done", "fail"], reason: str | None = None) -> None:
        """Tell the axis the delivery is handled (``done``: stored and answered; ``fail``: refused, ``reason``)."""
        self._check_delivery_id(delivery_id)
        if outcome not in ("done", "fail"):
            raise ValueError("outcome must be 'done' or 'fail'")
        payload = json.dumps({"outcome": outcome, "reason": reason}, ensure_ascii=False).encode()
        self._call(
            "POST",
            f"{EXCHANGE}/inbox/{delivery_id}/ack",
            what=f"acknowledging {delivery_id}",
            content=payload,
            headers={"Content-Type": "application/json"},
            expect=(200, 204),
        )
        self._known.pop(delivery_id, None)

    def ack_many(self, acks: Sequence[Ack]) -> list[str]:
        """Acknowledge several deliveries in one request; return the ids the axis did not know (not ours)."""
        if not acks:
            return []
        self._check_acks(acks)
        payload = {"acks": [{"delivery_id": a.delivery_id, "outcome": a.outcome, "reason": a.reason} for a in acks]}
        body = self._post_json(f"{EXCHANGE}/inbox/ack", payload, what=f"acknowledging {len(acks)} deliveries")
        receipt = self._model(_AckReceipt, body, "the acknowledgement receipt")
        for a in acks:
            self._known.pop(a.delivery_id, None)
        return receipt.unknown

    def sent(self, message_id: str) -> SentReport:
        """What became of one message this node handed over (``GET /sent/{message_id}``); 404 if not ours."""
        if not MESSAGE_ID.match(message_id):
            raise ValueError("message_id must be 64 lowercase hex digits")
        _, body, _ = self._call(
            "GET", f"{EXCHANGE}/sent/{message_id}", what=f"asking about {message_id[:16]}", expect=(200,)
        )
        report = self._model(SentReport, body, "the report")
        if report.message_id != message_id:
            raise RetryableDeliveryError(f"the report names message {report.message_id[:16]}", status=200)
        return report

    def sent_many(self, message_ids: Sequence[str]) -> tuple[list[SentReport], list[str]]:
        """What became of several messages this node handed over (``POST /sent``, at most 100): the reports,
        and the ids the axis does not know as this node's."""
        if not 1 <= len(message_ids) <= 100:
            raise ValueError("1..100 message ids")
        for message_id in message_ids:
            if not MESSAGE_ID.match(message_id):
                raise ValueError("message_id must be 64 lowercase hex digits")
        body = self._post_json(
            f"{EXCHANGE}/sent", {"message_ids": list(message_ids)}, what=f"asking about {len(message_ids)} messages"
        )
        answer = self._model(_SentReports, body, "the reports")
        asked = set(message_ids)
        if any(r.message_id not in asked for r in answer.messages):
            raise RetryableDeliveryError("the reports name messages that were not asked about", status=200)
        return answer.messages, answer.unknown

    # -- lifecycle -------------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AxisClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AxisClient({self.base_url!r}, {self.node_key.node_id!r} to {self.peer_id!r})"

    # -- internals -------------------------------------------------------------------------------------

    @classmethod
    def _check_acks(cls, acks: Sequence[Ack]) -> None:
        for a in acks:
            cls._check_delivery_id(a.delivery_id)
            if a.outcome not in ("done", "fail"):
                raise ValueError("outcome must be 'done' or 'fail'")

    @staticmethod
    def _check_delivery_id(delivery_id: str) -> None:
        if not DELIVERY_ID.match(delivery_id) or delivery_id in (".", ".."):
            raise ValueError(f"invalid delivery id {delivery_id!r}")

    @staticmethod
    def _model(model: type[_M], body: bytes, what: str) -> _M:
        try:
            return model.model_validate_json(body)
        except ValidationError as e:
            # A signed answer we cannot read: the other node runs another protocol version or is broken.
            # Retrying is safe and an operator will see the error.
            raise RetryableDeliveryError(f"{what} is not what protocol v2 says: {e.error_count()} errors") from None

    def _post_json(self, path: str, payload: object, *, what: str) -> bytes:
        """POST ``payload`` as JSON, expecting 200; the verified answer's body."""
        content = json.dumps(payload, ensure_ascii=False).encode()
        _, body, _ = self._call(
            "POST", path, what=what, content=content, headers={"Content-Type": "application/json"}, expect=(200,)
        )
        return body

    def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        expect: tuple[int, ...],
        content: bytes = b"",
        headers: dict[str, str] | None = None,
        params: dict[str, str | int | float] | None = None,
    ) -> tuple[int, bytes, httpx.Headers]:
        request = self._http.build_request(method, path, content=content, headers=headers, params=params)
        try:
            response = self._http.send(request, stream=True)
            try:
                body = self._read(response, what)
            finally:
                response.close()
        except httpx.TimeoutException as e:
            raise RetryableDeliveryError(f"{what}: timed out ({type(e).__name__})") from None
        except httpx.TransportError as e:
            raise RetryableDeliveryError(f"{what}: {type(e).__name__}: {e}") from None
        status = response.status_code
        signed = "signature" in response.headers or "signature-input" in response.headers
        if 200 <= status < 300 or signed or self.require_signed_errors:
            try:
                verify_response(
                    status,
                    response.headers.multi_items(),
                    body,
                    public_key=self.axis_public_key,
                    request_headers=response.request.headers.multi_items(),
                )
            except ResponseSignatureError as e:
                if 200 <= status < 300 or self.require_signed_errors:
                    said = "" if 200 <= status < 300 else _unauthenticated_detail(status, body)
                    raise ResponseSignatureError(f"{what}: {e.reason}{said}", status=status) from None
                # An error answer not provably for this request (a refusal of its signature is never bound to
                # it, protocol §4) is worth what an unsigned one is: it only says whether to retry.
                signed = False
        if status in expect:
            return status, body, response.headers
        if 200 <= status < 300:
            raise RetryableDeliveryError(f"{what}: unexpected HTTP {status}", status=status)
        raise error_for(status, body, response.headers.get("retry-after"), what=what, signed=signed)

    def _read(self, response: httpx.Response, what: str) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            raise PermanentDeliveryError(
                f"{what}: the answer is {int(declared):,} bytes, over {self.max_response_bytes:,}",
                status=response.status_code,
            )
        if response.is_stream_consumed:  # transports that hand over a response already read (httpx.MockTransport)
            body = response.content
            if len(body) > self.max_response_bytes:
                raise PermanentDeliveryError(
                    f"{what}: the answer is over {self.max_response_bytes:,} bytes", status=response.status_code
                )
            return body
        chunks, size = [], 0
        for chunk in response.iter_raw():
            size += len(chunk)
            if size > self.max_response_bytes:
                raise PermanentDeliveryError(
                    f"{what}: the answer is over {self.max_response_bytes:,} bytes", status=response.status_code
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _unauthenticated_detail(status: int, body: bytes, limit: int = 300) -> str:
    """What an error answer that could not be authenticated says, for the operator's log, marked as such: the
    likeliest cause of such an answer is the axis refusing this node's own request (a wrong key or node id)."""
    try:
        problem = json.loads(body)
    except ValueError:
        return f"; the unauthenticated HTTP {status} answer is not a problem document"
    detail = problem.get("detail") if isinstance(problem, dict) else None
    if not isinstance(detail, str) or not detail:
        return f"; the unauthenticated HTTP {status} answer gives no detail"
    return f"; the unauthenticated HTTP {status} answer says: {detail[:limit]}"
