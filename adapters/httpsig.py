"""Node authentication: RFC 9421 HTTP Message Signatures over RFC 9530 Content-Digest, with replay protection.

Protocol v2 (docs/protocol.md): every request between nodes is signed with the calling node's Ed25519 key,
label ``lienthong``, covering ``"@method" "@path" "@query" "content-digest" "lienthong-to"`` with ``created``,
``expires`` (= created + 60 s), a 128-bit ``nonce``, ``keyid`` (the node id) and ``alg="ed25519"``. The
authority and scheme are deliberately not covered so that reverse proxies and TLS terminators do not break
signatures; the path, query, method and body are what an attacker would want to change. Since the host is not
signed, the ``Lienthong-To`` header names the node the request is for, and a node refuses a request that names
another (or none: a v1 request): a node that received a signed request cannot resend it to another node that
knows the signer, whose nonce store has not seen it.

Answers are signed by the answering node over ``"@status" "content-digest"`` and the request's own
signature (``"signature";key="lienthong";req``): that one component binds the answer to the exact request
(its method, path, query, body and nonce), so a recorded answer cannot be replayed to another request.

The cryptography and the RFC 9421 signature base come from ``http_message_signatures``; this module adds the
protocol's policy (which label, which components, which clock window, nonces) and names every refusal with
the HTTP status the server should answer.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    MappingKeyResolver,
    algorithms,
)

from adapters._private.messages import (
    PLACEHOLDER_METHOD,
    PLACEHOLDER_URL,
    HeaderInput,
    Headers,
    RequestView,
    ResponseView,
    absolute_url,
    header_pairs,
)
from adapters._private.sigparse import ParsedSignature, joined_field, parse_signature, required_int, required_str
from adapters.errors import (
    ContentDigestMismatchError,
    HttpSignatureError,
    MalformedSignatureError,
    MisaddressedRequestError,
    ReplayedRequestError,
    ResponseSignatureError,
    SignatureExpiredError,
    SignatureInvalidError,
)

__all__ = [
    "ALGORITHM",
    "LABEL",
    "MAX_SKEW",
    "RECEIVER_HEADER",
    "REQUEST_COMPONENTS",
    "RESPONSE_COMPONENTS",
    "SIGNATURE_LIFETIME",
    "NodeKey",
    "NodeSigningAuth",
    "PublicKeyInput",
    "SignedRequestHeaders",
    "VerifiedRequest",
    "VerifiedResponse",
    "load_public_key",
    "sign_request",
    "sign_response",
    "verify_request",
    "verify_request_body",
    "verify_request_headers",
    "verify_response",
]

LABEL = "lienthong"
ALGORITHM = "ed25519"
# The field naming the node a request is for: always present and signed (protocol v2), checked by the receiver.
RECEIVER_HEADER = "lienthong-to"
REQUEST_COMPONENTS = ("@method", "@path", "@query", "content-digest", RECEIVER_HEADER)
RESPONSE_COMPONENTS = ("@status", "content-digest")
REQUEST_BINDING = f'"signature";key="{LABEL}";req'
# Fields signed whenever a message carries them, and then required to be signed: the message id names what
# a body is, so it must not be changeable in transit independently of the body.
SIGNED_IF_PRESENT = ("lienthong-message-id",)
SIGNATURE_LIFETIME = 60  # seconds from created to expires
MAX_SKEW = 300  # seconds of clock difference tolerated between nodes

_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_NO_PARAMS: frozenset[tuple[str, Any]] = frozenset()
_REQUIRED_REQUEST = tuple((c, _NO_PARAMS) for c in REQUEST_COMPONENTS)
_REQUIRED_RESPONSE = tuple((c, _NO_PARAMS) for c in RESPONSE_COMPONENTS)
_BINDING = ("signature", frozenset({("key", LABEL), ("req", True)}))

PublicKeyInput = bytes | Ed25519PublicKey
"""A public key as the raw 32 bytes, PEM (SubjectPublicKeyInfo) bytes, or a cryptography key object."""


# -- keys ----------------------------------------------------------------------------------------------------


def load_public_key(value: PublicKeyInput) -> Ed25519PublicKey:
    """An Ed25519 public key from raw bytes, PEM, or a key object; ValueError otherwise."""
    if isinstance(value, Ed25519PublicKey):
        return value
    if len(value) == 32:
        return Ed25519PublicKey.from_public_bytes(value)
    key = load_pem_public_key(value)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


class NodeKey:
    """A node's identity on the exchange: its id (the signature ``keyid``) and its Ed25519 private key."""

    def __init__(self, node_id: str, private_key: Ed25519PrivateKey) -> None:
        if not _NODE_ID.match(node_id):
            raise ValueError(f"invalid node id {node_id!r}: letters, digits and . _ : - only, at most 128")
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("a node key is an Ed25519 private key")
        self.node_id = node_id
        self.private_key = private_key

    @classmethod
    def generate(cls, node_id: str) -> NodeKey:
        return cls(node_id, Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, data: bytes, node_id: str, password: bytes | None = None) -> NodeKey:
        key = load_pem_private_key(data, password=password)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the node key must be an Ed25519 private key (PKCS#8 PEM)")
        return cls(node_id, key)

    @classmethod
    def load(cls, path: Path | str, node_id: str, password: bytes | None = None) -> NodeKey:
        return cls.from_pem(Path(path).read_bytes(), node_id, password)

    def to_pem(self, password: bytes | None = None) -> bytes:
        encryption = BestAvailableEncryption(password) if password else NoEncryption()
        return self.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption)

    def save(self, path: Path | str, password: bytes | None = None) -> None:
        """Write the key as PKCS#8 PEM readable by the owner only; never overwrites an existing file."""
        # O_EXCL: replacing a node key by accident would cut the node off from every peer that knows it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.to_pem(password))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def public_key_bytes(self) -> bytes:
        """The raw 32-byte public key (what peers configure, base64-encoded)."""
        return self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key_bytes).decode()

    def __repr__(self) -> str:
        return f"NodeKey({self.node_id!r}, public={self.public_key_b64})"


# -- library glue ----------------------------------------------------------------------------------------


class _Verifier(HTTPMessageVerifier):
    # Time checks happen before, against the caller's clock and skew (the library's use wall time and 5 s).
    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        return None


def _signer(key: NodeKey) -> HTTPMessageSigner:
    resolver = MappingKeyResolver(public_keys={}, private_keys={key.node_id: key.private_key})
    return HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=resolver)


def _verifier(keyid: str, public_key: Ed25519PublicKey) -> _Verifier:
    resolver = MappingKeyResolver(public_keys={keyid: public_key}, private_keys={})
    return _Verifier(signature_algorithm=algorithms.ED25519, key_resolver=resolver)


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def _new_headers(headers: HeaderInput | None, body: bytes) -> tuple[Headers, bool, tuple[str, ...]]:
    """The fields the signature covers: an existing Content-Digest (checked against the body), SIGNED_IF_PRESENT."""
    pairs = header_pairs(headers) if headers is not None else []
    view = Headers()
    extra: list[str] = []
    for name in SIGNED_IF_PRESENT:
        value = joined_field(pairs, name)
        if value is not None:
            view.lines.append((name, value))
            extra.append(name)
    digest = joined_field(pairs, "content-digest")
    if digest is None:
        return view, False, tuple(extra)
    try:
        ContentDigest.verify(digest, body)
    except HTTPMessageSignaturesException as e:
        raise ValueError(f"the Content-Digest already set does not match the body: {e}") from None
    view.lines.append(("Content-Digest", digest))
    return view, True, tuple(extra)


def _present(pairs: list[tuple[str, str]]) -> tuple[tuple[str, frozenset[tuple[str, Any]]], ...]:
    return tuple((name, _NO_PARAMS) for name in SIGNED_IF_PRESENT if joined_field(pairs, name) is not None)


def _added(view_headers: Headers) -> dict[str, str]:
    names = ("content-digest", "signature-input", "signature", RECEIVER_HEADER)
    return {k: v for k, v in view_headers.lines if k.lower() in names}


# -- requests --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedRequest:
    """Who signed a request, when, and the nonce now spent."""

    keyid: str
    created: datetime
    expires: datetime
    nonce: str
    signature: bytes


def sign_request(
    method: str,
    url: str,
    headers: HeaderInput | None,
    body: bytes,
    key: NodeKey,
    *,
    to: str,
    now: datetime | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers to add to a request so that it is signed by ``key`` for node ``to``: Lienthong-To,
    Content-Digest, Signature-Input, Signature.

    ``to`` is the id of the node the request is sent to (the receiver refuses a request naming another).
    ``url`` is the absolute (or path-only) URL as it will be sent, already percent-encoded. ``headers`` are
    the request's other headers: a Lienthong-Message-Id among them is covered too, and an existing
    Content-Digest is kept (it must match ``body``).
    """
    if not _NODE_ID.match(to):
        raise ValueError(f"invalid receiving node id {to!r}")
    already = joined_field(header_pairs(headers), RECEIVER_HEADER) if headers is not None else None
    if already is not None and already != to:
        raise ValueError(f"the request already names node {already!r} in Lienthong-To, not {to!r}")
    created = _now(now)
    view_headers, existing, extra = _new_headers(headers, body)
    view_headers.lines.append(("Lienthong-To", to))
    view = RequestView(method.upper(), absolute_url(url), view_headers)
    _signer(key).sign(
        view,
        key_id=key.node_id,
        created=created,
        expires=created + timedelta(seconds=SIGNATURE_LIFETIME),
        nonce=nonce or secrets.token_urlsafe(16),
        label=LABEL,
        covered_component_ids=(*REQUEST_COMPONENTS, *extra),
        body=body,
        use_existing_digest=existing,
    )
    return _added(view_headers)


def _check_times(
    params: dict[str, Any], now: datetime, max_skew: int, error: Callable[[str], Exception]
) -> tuple[datetime, datetime]:
    created_ts = required_int(params, "created")
    expires_ts = required_int(params, "expires")
    try:
        created = datetime.fromtimestamp(created_ts, UTC)
        expires = datetime.fromtimestamp(expires_ts, UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedSignatureError("created/expires are not valid times") from None
    if expires <= created:
        raise MalformedSignatureError("the signature expires before it was created")
    skew = timedelta(seconds=max_skew)
    if created > now + skew:
        raise error(f"the signature was created {int((created - now).total_seconds())} s in the future")
    if created < now - skew:
        raise error(f"the signature was created {int((now - created).total_seconds())} s ago; the limit is {max_skew}")
    if expires < now:
        raise error(f"the signature expired {int((now - expires).total_seconds())} s ago")
    return created, expires


def _check_coverage(parsed: ParsedSignature, required: tuple[tuple[str, frozenset[tuple[str, Any]]], ...]) -> None:
    covered = set(parsed.components)
    if len(covered) != len(parsed.components):
        raise MalformedSignatureError("the signature covers a component twice")
    missing = [name for name, params in required if (name, params) not in covered]
    if missing:
        raise SignatureInvalidError(f"the signature does not cover {', '.join(missing)}")


def _check_alg(params: dict[str, Any]) -> None:
    alg = params.get("alg")
    if alg is None:
        raise SignatureInvalidError('the signature has no "alg" parameter')
    if alg != ALGORITHM:
        raise SignatureInvalidError(f"the signature algorithm is {alg!r}; nodes sign with {ALGORITHM!r}")


def verify_request(
    method: str,
    url: str,
    headers: HeaderInput,
    body: bytes,
    *,
    receiver: str,
    resolve_key: Callable[[str], PublicKeyInput | None],
    remember_nonce: Callable[[str, str, datetime], bool],
    now: datetime | None = None,
    max_skew: int = MAX_SKEW,
) -> VerifiedRequest:
    """Check that a request is signed by a known node for ``receiver``, fresh, intact and not replayed; spend
    its nonce.

    ``headers`` may be a mapping or the raw list of field lines (better: repeated lines are then seen).
    ``receiver`` is this node's id: the signed ``Lienthong-To`` must name it. ``resolve_key(keyid)`` returns
    the node's public key or None; ``remember_nonce(keyid, nonce, until)`` stores the nonce until ``until``
    and returns False if it was already stored. It is called last, only for requests whose signature
    verified, so strangers cannot fill the store.

    The same as :func:`verify_request_headers` then :func:`verify_request_body`; a server should call those
    two itself, reading the body in between, so that a stranger cannot make it read (and hold) a body.

    Raises an :class:`~adapters.errors.HttpSignatureError` subclass carrying ``http_status`` (401: missing,
    bad, expired or replayed signature; 400: malformed headers, body not matching its digest) and ``reason``.
    """
    signed = verify_request_headers(
        method, url, headers, receiver=receiver, resolve_key=resolve_key, now=now, max_skew=max_skew
    )
    return verify_request_body(signed, body, remember_nonce=remember_nonce)


@dataclass(frozen=True)
class SignedRequestHeaders:
    """A request whose signature verified over its method, path, query and headers (Content-Digest among them).

    Its body is not checked yet, nor its nonce spent: :func:`verify_request_body` does both.
    """

    keyid: str
    created: datetime
    expires: datetime
    nonce: str
    signature: bytes
    accept_until: datetime
    covered_components: Mapping[str, str]


def verify_request_headers(
    method: str,
    url: str,
    headers: HeaderInput,
    *,
    receiver: str,
    resolve_key: Callable[[str], PublicKeyInput | None],
    now: datetime | None = None,
    max_skew: int = MAX_SKEW,
) -> SignedRequestHeaders:
    """Every check of :func:`verify_request` that needs no body: the signature, by a known node, for
    ``receiver`` (this node's id), fresh.

    The signature covers the ``Content-Digest`` field, not the body, so it can be checked before a byte of
    the body is read: a server that does so holds a body only for a node it knows.
    """
    moment = _now(now)
    pairs = header_pairs(headers)
    parsed = parse_signature(pairs, LABEL)
    params = parsed.params
    keyid = required_str(params, "keyid", max_len=128)
    _check_alg(params)
    to = joined_field(pairs, RECEIVER_HEADER)
    if to is None:
        raise MisaddressedRequestError(
            "the request has no Lienthong-To header naming the node it is for: required since protocol v2 "
            "(a node of protocol v1 must be upgraded)"
        )
    _check_coverage(parsed, (*_REQUIRED_REQUEST, *_present(pairs)))
    if to != receiver:
        raise MisaddressedRequestError(
            f"the request is for node {to[:128]!r} (Lienthong-To), not for this node {receiver!r}: "
            "a request signed for another node is not accepted here"
        )
    created, expires = _check_times(params, moment, max_skew, SignatureExpiredError)
    nonce = required_str(params, "nonce", max_len=128)
    if not _NONCE.match(nonce):
        raise MalformedSignatureError("the nonce must be 16..128 base64url characters (128 random bits or more)")
    if joined_field(pairs, "content-digest") is None:
        raise MalformedSignatureError("the request has no Content-Digest header (required, also for an empty body)")
    resolved = resolve_key(keyid)
    if resolved is None:
        raise SignatureInvalidError(f"unknown key {keyid!r}")
    try:
        public_key = load_public_key(resolved)
    except ValueError as e:
        raise SignatureInvalidError(f"the key configured for {keyid!r} is not usable: {e}") from None
    view = RequestView(method.upper(), absolute_url(url), Headers(pairs))
    try:
        results = _verifier(keyid, public_key).verify(view, max_age=None, require_components=REQUEST_COMPONENTS)
    except HTTPMessageSignaturesException as e:
        raise SignatureInvalidError(f"the signature does not verify: {e}") from None
    # The nonce must be remembered for as long as the request could be accepted.
    accept_until = min(expires, created + timedelta(seconds=max_skew))
    covered = dict(results[0].covered_components)
    return SignedRequestHeaders(keyid, created, expires, nonce, parsed.signature, accept_until, covered)


def verify_request_body(
    signed: SignedRequestHeaders, body: bytes, *, remember_nonce: Callable[[str, str, datetime], bool]
) -> VerifiedRequest:
    """The rest of :func:`verify_request`: the body matches the signed Content-Digest; the nonce is spent."""
    try:
        digest_checked = ContentDigest.verify_components(signed.covered_components, body)
    except HTTPMessageSignaturesException as e:
        raise ContentDigestMismatchError(f"the body does not match its Content-Digest: {e}") from None
    if not digest_checked:  # pragma: no cover - coverage of content-digest was checked before
        raise SignatureInvalidError("the signature does not cover the body")
    if not remember_nonce(signed.keyid, signed.nonce, signed.accept_until):
        raise ReplayedRequestError(f"the nonce {signed.nonce!r} of {signed.keyid!r} was already used: replayed request")
    return VerifiedRequest(signed.keyid, signed.created, signed.expires, signed.nonce, signed.signature)


# -- responses -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedResponse:
    """Who signed an answer and when; ``bound`` is True when it is bound to the request's signature."""

    keyid: str
    created: datetime
    bound: bool


def _request_signature_present(request_headers: HeaderInput | None) -> tuple[Headers, bool]:
    if request_headers is None:
        return Headers(), False
    pairs = header_pairs(request_headers)
    try:
        parse_signature(pairs, LABEL)
    except HttpSignatureError:
        return Headers(), False
    return Headers(pairs), True


def sign_response(
    status: int,
    headers: HeaderInput | None,
    body: bytes,
    key: NodeKey,
    *,
    request_headers: HeaderInput | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers to add to an answer so that it is signed by ``key``: Content-Digest, Signature-Input, Signature.

    Pass the request's headers: when they carry a ``lienthong`` signature the answer is bound to it.
    An answer to a request without a (parseable) signature is signed without that binding.
    """
    created = _now(now)
    view_headers, existing, extra = _new_headers(headers, body)
    req_headers, bound = _request_signature_present(request_headers)
    view = ResponseView(int(status), view_headers, RequestView(PLACEHOLDER_METHOD, PLACEHOLDER_URL, req_headers))
    components = (*RESPONSE_COMPONENTS, *extra, *((REQUEST_BINDING,) if bound else ()))
    _signer(key).sign(
        view,
        key_id=key.node_id,
        created=created,
        expires=created + timedelta(seconds=SIGNATURE_LIFETIME),
        label=LABEL,
        covered_component_ids=components,
        body=body,
        use_existing_digest=existing,
    )
    return _added(view_headers)


def verify_response(
    status: int,
    headers: HeaderInput,
    body: bytes,
    *,
    public_key: PublicKeyInput,
    request_headers: HeaderInput | None,
    now: datetime | None = None,
    max_skew: int = MAX_SKEW,
) -> VerifiedResponse:
    """Check that an answer is signed by ``public_key``, fresh, intact and, when the request was signed, bound to it.

    ``request_headers`` are the headers of the request as sent (with its Signature). Raises
    :class:`~adapters.errors.ResponseSignatureError`.
    """
    moment = _now(now)
    pairs = header_pairs(headers)
    try:
        parsed = parse_signature(pairs, LABEL)
        params = parsed.params
        keyid = required_str(params, "keyid", max_len=128)
        _check_alg(params)
        req_headers, bound = _request_signature_present(request_headers)
        required = (*_REQUIRED_RESPONSE, *_present(pairs), *((_BINDING,) if bound else ()))
        _check_coverage(parsed, required)
        created, _ = _check_times(params, moment, max_skew, SignatureExpiredError)
        if joined_field(pairs, "content-digest") is None:
            raise MalformedSignatureError("no Content-Digest header")
    except HttpSignatureError as e:
        raise ResponseSignatureError(e.reason, status=status) from None
    try:
        key = load_public_key(public_key)
    except ValueError as e:
        raise ResponseSignatureError(f"the configured public key is not usable: {e}", status=status) from None
    view = ResponseView(int(status), Headers(pairs), RequestView(PLACEHOLDER_METHOD, PLACEHOLDER_URL, req_headers))
    try:
        results = _verifier(keyid, key).verify(view, max_age=None)
        ContentDigest.verify_components(results[0].covered_components, body)
    except HTTPMessageSignaturesException as e:
        raise ResponseSignatureError(f"the signature does not verify: {e}", status=status) from None
    return VerifiedResponse(keyid, created, bound)


# -- httpx -----------------------------------------------------------------------------------------------


class NodeSigningAuth(httpx.Auth):
    """Signs every request an ``httpx`` client sends with the node's key for node ``to`` (replacing any earlier
    signature)."""

    requires_request_body = True

    def __init__(self, key: NodeKey, to: str) -> None:
        if not _NODE_ID.match(to):
            raise ValueError(f"invalid receiving node id {to!r}")
        self.key = key
        self.to = to  # the node every request of this client is for (Lienthong-To)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        for name in ("Signature-Input", "Signature", "Content-Digest", "Lienthong-To"):
            request.headers.pop(name, None)
        signature = sign_request(
            request.method, str(request.url), request.headers.multi_items(), request.content, self.key, to=self.to
        )
        request.headers.update(signature)
        yield request
