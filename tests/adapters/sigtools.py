"""Helpers for the adapters tests: fixed keys, a nonce store, and hand-made signatures for attack cases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

from adapters._private.messages import Headers, RequestView
from adapters.httpsig import NodeKey, sign_request

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
URL = "https://truc.example.vn/api/v1/exchange/envelopes"
RECEIVER = "truc"  # the node id of the server at URL: the Lienthong-To the requests here are signed for
BODY = b"<edXML>...</edXML>"


class NonceStore:
    """What the server keeps: (keyid, nonce) → until; refuses a pair it already holds."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], datetime] = {}

    def __call__(self, keyid: str, nonce: str, until: datetime) -> bool:
        if (keyid, nonce) in self.seen:
            return False
        self.seen[(keyid, nonce)] = until
        return True


def signed(
    key: NodeKey,
    method: str = "POST",
    url: str = URL,
    body: bytes = BODY,
    now: datetime = NOW,
    to: str = RECEIVER,
    **kw: str,
) -> dict[str, str]:
    return {"Content-Type": "application/xml", **sign_request(method, url, None, body, key, to=to, now=now, **kw)}


def crafted(
    key: NodeKey,
    *,
    method: str = "POST",
    url: str = URL,
    body: bytes | None = BODY,
    components: Sequence[str] = ("@method", "@path", "@query", "content-digest", "lienthong-to"),
    to: str | None = RECEIVER,
    created: datetime = NOW,
    expires: datetime | None = None,
    nonce: str | None = "bm9uY2Utbm9uY2Utbm9uY2U",
    algorithm: type[algorithms.HTTPSignatureAlgorithm] = algorithms.ED25519,
    include_alg: bool = True,
    label: str = "lienthong",
    keyid: str | None = None,
    fields: Sequence[tuple[str, str]] = (),
) -> dict[str, str]:
    """A signature made with the library directly, free of our signer's policy (for attacks).

    ``to`` is the Lienthong-To header sent (None: none, as a protocol v1 node sends), whether covered or not;
    ``fields`` are other header fields in the message (returned too), to be covered by naming them in ``components``.
    """
    headers = Headers([*([("Lienthong-To", to)] if to is not None else []), *fields])
    keyid = keyid or key.node_id
    resolver = MappingKeyResolver(public_keys={}, private_keys={keyid: key.private_key})
    signer = HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=resolver)
    signer.sign(
        RequestView(method, url, headers),
        key_id=keyid,
        created=created,
        expires=expires or created + timedelta(seconds=60),
        nonce=nonce,
        label=label,
        include_alg=include_alg,
        covered_component_ids=components,
        body=body,
    )
    return dict(headers.lines)


class ClaimsRsa(algorithms.ED25519):
    """Signs with Ed25519 but writes alg="rsa-pss-sha512": the alg-mismatch attack."""

    algorithm_id = "rsa-pss-sha512"
