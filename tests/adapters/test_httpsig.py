"""RFC 9421/9530 vectors, the request and response signature round trips, and every refusal the protocol names."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    MappingKeyResolver,
    algorithms,
)

from adapters._private.messages import HeaderInput, Headers, RequestView
from adapters.errors import (
    ContentDigestMismatchError,
    HttpSignatureError,
    MalformedSignatureError,
    MisaddressedRequestError,
    ReplayedRequestError,
    ResponseSignatureError,
    SignatureExpiredError,
    SignatureInvalidError,
    SignatureMissingError,
)
from adapters.httpsig import (
    NodeKey,
    NodeSigningAuth,
    PublicKeyInput,
    VerifiedRequest,
    load_public_key,
    sign_request,
    sign_response,
    verify_request,
    verify_response,
)
from tests.adapters.sigtools import BODY, NOW, RECEIVER, URL, ClaimsRsa, NonceStore, crafted, signed

# RFC 9421 Appendix B.1.4, test-key-ed25519.
RFC_ED25519_PRIVATE = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
RFC_ED25519_PUBLIC = b"""-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
"""
# RFC 9421 Appendix B.2.6.
B26_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");'
    'created=1618884473;keyid="test-key-ed25519"'
)
B26_SIGNATURE = "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"
B2_HEADERS = [
    ("Host", "example.com"),
    ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
    ("Content-Type", "application/json"),
    (
        "Content-Digest",
        "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
    ),
    ("Content-Length", "18"),
]
B2_URL = "https://example.com/foo?param=Value&Pet=dog"


@pytest.fixture
def key() -> NodeKey:
    return NodeKey.generate("so-noi-vu-hn")


@pytest.fixture
def nonces() -> NonceStore:
    return NonceStore()


def check(
    key: NodeKey,
    nonces: NonceStore,
    headers: HeaderInput,
    *,
    method: str = "POST",
    url: str = URL,
    body: bytes = BODY,
    known: dict[str, PublicKeyInput] | None = None,
    **kw: Any,
) -> VerifiedRequest:
    keys = known if known is not None else {key.node_id: key.public_key_bytes}
    return verify_request(
        method,
        url,
        headers,
        body,
        receiver=kw.pop("receiver", RECEIVER),
        resolve_key=keys.get,
        remember_nonce=nonces,
        now=kw.pop("now", NOW + timedelta(seconds=2)),
        **kw,
    )


def refused(
    err: type[HttpSignatureError], status: int, key: NodeKey, nonces: NonceStore, headers: dict[str, str], **kw: Any
) -> HttpSignatureError:
    with pytest.raises(err) as info:
        check(key, nonces, headers, **kw)
    assert info.value.http_status == status
    assert info.value.reason
    return info.value


# -- vectors -------------------------------------------------------------------------------------------------


def test_rfc9421_b26_ed25519_signature_is_reproduced_byte_for_byte() -> None:
    rfc_key = NodeKey.from_pem(RFC_ED25519_PRIVATE, "test-key-ed25519")
    headers = Headers(list(B2_HEADERS))
    resolver = MappingKeyResolver(public_keys={}, private_keys={rfc_key.node_id: rfc_key.private_key})
    HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=resolver).sign(
        RequestView("POST", B2_URL, headers),
        key_id="test-key-ed25519",
        created=NOW.fromtimestamp(1618884473, NOW.tzinfo),
        label="sig-b26",
        include_alg=False,
        covered_component_ids=("date", "@method", "@path", "@authority", "content-type", "content-length"),
        use_existing_digest=True,  # the B.2 request carries its own (uncovered) sha-512 Content-Digest
    )
    lines = dict(headers.lines)
    assert lines["Signature-Input"] == B26_INPUT
    assert lines["Signature"] == B26_SIGNATURE  # Ed25519 is deterministic: same key, same base, same bytes


def test_rfc9421_b26_verifies_with_the_b14_public_key() -> None:
    public = load_public_key(RFC_ED25519_PUBLIC)
    assert public.public_bytes_raw() == NodeKey.from_pem(RFC_ED25519_PRIVATE, "x").public_key_bytes
    headers = Headers([*B2_HEADERS, ("Signature-Input", B26_INPUT), ("Signature", B26_SIGNATURE)])
    verifier = HTTPMessageVerifier(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={"test-key-ed25519": public}, private_keys={}),
    )
    (result,) = verifier.verify(RequestView("POST", B2_URL, headers), max_age=None)  # the vector is from 2021
    assert result.parameters["keyid"] == "test-key-ed25519"


def test_rfc9530_content_digest_vector() -> None:
    # RFC 9530 Appendix B: the SHA-256 of {"hello": "world"}.
    assert ContentDigest.create(b'{"hello": "world"}') == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"


# -- requests: the happy path -----------------------------------------------------------------------------


def test_signed_request_verifies_and_spends_its_nonce(key: NodeKey, nonces: NonceStore) -> None:
    headers = signed(key)
    assert set(headers) == {"Content-Type", "Lienthong-To", "Content-Digest", "Signature-Input", "Signature"}
    assert headers["Lienthong-To"] == RECEIVER
    sig_input = headers["Signature-Input"]
    assert sig_input.startswith('lienthong=("@method" "@path" "@query" "content-digest" "lienthong-to");created=')
    assert 'keyid="so-noi-vu-hn"' in sig_input and 'alg="ed25519"' in sig_input
    assert f"expires={int(NOW.timestamp()) + 60}" in sig_input
    verified = check(key, nonces, headers)
    assert verified.keyid == "so-noi-vu-hn"
    assert verified.created == NOW
    assert len(base64.urlsafe_b64decode(verified.nonce + "==")) == 16
    ((stored_key, until),) = nonces.seen.items()
    assert stored_key == ("so-noi-vu-hn", verified.nonce)
    assert until == NOW + timedelta(seconds=60)


def test_empty_body_is_digested_too(key: NodeKey, nonces: NonceStore) -> None:
    headers = signed(key, method="GET", url=URL.replace("envelopes", "inbox?limit=50"), body=b"")
    assert headers["Content-Digest"] == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
    check(key, nonces, headers, method="GET", url=URL.replace("envelopes", "inbox?limit=50"), body=b"")


def test_authority_is_not_signed_so_proxies_may_rewrite_it(key: NodeKey, nonces: NonceStore) -> None:
    headers = signed(key)
    check(key, nonces, headers, url="http://10.0.0.5:8080/api/v1/exchange/envelopes")
    check(key, NonceStore(), headers, url="/api/v1/exchange/envelopes")


def test_header_names_are_case_insensitive_and_lists_of_lines_are_accepted(key: NodeKey, nonces: NonceStore) -> None:
    lines = [(k.lower(), v) for k, v in signed(key).items()]
    assert check(key, nonces, lines, method="post", known={key.node_id: key.public_key}, now=NOW).keyid == key.node_id


# -- requests: attacks -----------------------------------------------------------------------------------


def test_unsigned_request(key: NodeKey, nonces: NonceStore) -> None:
    refused(SignatureMissingError, 401, key, nonces, {"Content-Type": "application/xml"})
    headers = signed(key)
    del headers["Signature"]
    refused(SignatureMissingError, 401, key, nonces, headers)


def test_wrong_key(key: NodeKey, nonces: NonceStore) -> None:
    impostor = NodeKey.generate(key.node_id)  # claims our node's id, signs with its own key
    refused(SignatureInvalidError, 401, key, nonces, signed(impostor))
    assert not nonces.seen  # nonces of requests that do not verify are not stored


def test_unknown_keyid(key: NodeKey, nonces: NonceStore) -> None:
    refused(SignatureInvalidError, 401, key, nonces, signed(NodeKey.generate("stranger")))


def test_body_changed_after_signing(key: NodeKey, nonces: NonceStore) -> None:
    e = refused(ContentDigestMismatchError, 400, key, nonces, signed(key), body=BODY + b"<!-- more -->")
    assert "Content-Digest" in e.reason
    assert not nonces.seen


def test_digest_header_replaced_to_match_a_new_body(key: NodeKey, nonces: NonceStore) -> None:
    headers = signed(key)
    headers["Content-Digest"] = ContentDigest.create(b"evil")
    refused(SignatureInvalidError, 401, key, nonces, headers, body=b"evil")


def test_path_query_and_method_changed(key: NodeKey, nonces: NonceStore) -> None:
    headers = signed(key, method="GET", url=URL.replace("envelopes", "inbox?limit=50"), body=b"")
    for method, url in [
        ("GET", URL.replace("envelopes", "inbox/other?limit=50")),
        ("GET", URL.replace("envelopes", "inbox?limit=500")),
        ("GET", URL.replace("envelopes", "inbox")),
        ("DELETE", URL.replace("envelopes", "inbox?limit=50")),
    ]:
        refused(SignatureInvalidError, 401, key, nonces, headers, method=method, url=url, body=b"")


def test_replayed_nonce(key: NodeKey, nonces: NonceStore) -> None:
    headers = signed(key)
    check(key, nonces, headers)
    refused(ReplayedRequestError, 401, key, nonces, headers, now=NOW + timedelta(seconds=30))


def test_expired_and_future_created(key: NodeKey, nonces: NonceStore) -> None:
    headers = signed(key)
    refused(SignatureExpiredError, 401, key, nonces, headers, now=NOW + timedelta(seconds=61))
    refused(SignatureExpiredError, 401, key, nonces, signed(key, now=NOW + timedelta(seconds=301)), now=NOW)
    long_lived = crafted(key, expires=NOW + timedelta(days=1))
    refused(SignatureExpiredError, 401, key, nonces, long_lived, now=NOW + timedelta(seconds=301))
    check(key, nonces, signed(key, now=NOW + timedelta(seconds=299)), now=NOW)  # within the skew
    assert not any(n == "bm9uY2Utbm9uY2Utbm9uY2U" for _, n in nonces.seen)


def test_replay_window_covers_the_whole_acceptance_window(key: NodeKey, nonces: NonceStore) -> None:
    check(key, nonces, crafted(key, expires=NOW + timedelta(days=1)))
    ((_, until),) = nonces.seen.items()
    assert until == NOW + timedelta(seconds=300)  # then created is too old, whatever expires says


def test_missing_content_digest_coverage(key: NodeKey, nonces: NonceStore) -> None:
    headers = crafted(key, components=("@method", "@path", "@query"), body=None)
    headers["Content-Digest"] = ContentDigest.create(BODY)
    e = refused(SignatureInvalidError, 401, key, nonces, headers)
    assert "content-digest" in e.reason
    refused(SignatureInvalidError, 401, key, nonces, crafted(key, components=("@method", "@path", "content-digest")))


def test_missing_content_digest_header(key: NodeKey, nonces: NonceStore) -> None:
    headers = signed(key)
    del headers["Content-Digest"]
    refused(MalformedSignatureError, 400, key, nonces, headers)


def test_alg_mismatch_and_missing_alg(key: NodeKey, nonces: NonceStore) -> None:
    e = refused(SignatureInvalidError, 401, key, nonces, crafted(key, algorithm=ClaimsRsa))
    assert "rsa-pss-sha512" in e.reason
    refused(SignatureInvalidError, 401, key, nonces, crafted(key, include_alg=False))


def test_missing_nonce_keyid_or_bad_nonce(key: NodeKey, nonces: NonceStore) -> None:
    refused(SignatureInvalidError, 401, key, nonces, crafted(key, nonce=None))
    refused(MalformedSignatureError, 400, key, nonces, crafted(key, nonce="short"))


def test_duplicate_and_extra_labels(key: NodeKey, nonces: NonceStore) -> None:
    headers = signed(key)
    label_input = headers["Signature-Input"]
    other = crafted(key)["Signature-Input"]
    dup = dict(headers, **{"Signature-Input": f"{label_input}, {other}"})
    e = refused(MalformedSignatureError, 400, key, nonces, dup)
    assert "repeats" in e.reason
    # The same with the second label on a second field line.
    lines = [*headers.items(), ("Signature-Input", other)]
    with pytest.raises(MalformedSignatureError):
        check(key, nonces, lines, known={key.node_id: key.public_key}, now=NOW)
    extra = crafted(key, label="proxy")
    two = dict(
        headers,
        **{
            "Signature-Input": f"{label_input}, {extra['Signature-Input']}",
            "Signature": f"{headers['Signature']}, {extra['Signature']}",
        },
    )
    refused(MalformedSignatureError, 400, key, nonces, two)
    refused(SignatureMissingError, 401, key, nonces, crafted(key, label="other"))


def test_oversized_and_malformed_headers(key: NodeKey, nonces: NonceStore) -> None:
    headers = signed(key)
    big = dict(headers, **{"Signature-Input": headers["Signature-Input"] + ";x=" + '"' + "a" * 5000 + '"'})
    e = refused(MalformedSignatureError, 400, key, nonces, big)
    assert "limit" in e.reason
    refused(MalformedSignatureError, 400, key, nonces, dict(headers, Signature="lienthong=not bytes("))
    refused(MalformedSignatureError, 400, key, nonces, dict(headers, Signature="lienthong=1"))
    refused(MalformedSignatureError, 400, key, nonces, dict(headers, **{"Signature-Input": "lienthong=?1"}))
    comps = " ".join(f'"x-h{i}"' for i in range(20))
    refused(MalformedSignatureError, 400, key, nonces, dict(headers, **{"Signature-Input": f"lienthong=({comps})"}))


def test_unknown_signature_parameter_is_refused(key: NodeKey, nonces: NonceStore) -> None:
    headers = signed(key)
    headers["Signature-Input"] += ';extra="x"'  # not signed as sent: the base differs, and the parameter is unknown
    refused(SignatureInvalidError, 401, key, nonces, headers)


# -- responses -------------------------------------------------------------------------------------------


def test_response_round_trip_bound_to_the_request(key: NodeKey) -> None:
    axis = NodeKey.generate("truc-tinh")
    request_headers = signed(key)
    body = b'{"status": "accepted"}'
    headers = {"Content-Type": "application/json"}
    headers.update(sign_response(202, headers, body, axis, request_headers=request_headers, now=NOW))
    assert '"signature";key="lienthong";req' in headers["Signature-Input"]
    result = verify_response(
        202, headers, body, public_key=axis.public_key_bytes, request_headers=request_headers, now=NOW
    )
    assert (result.keyid, result.bound) == ("truc-tinh", True)

    def bad(
        status: int = 202,
        body: bytes = body,
        req: dict[str, str] = request_headers,
        public: bytes = axis.public_key_bytes,
        hdrs: dict[str, str] = headers,
    ) -> str:
        with pytest.raises(ResponseSignatureError) as info:
            verify_response(status, hdrs, body, public_key=public, request_headers=req, now=NOW)
        return info.value.reason

    bad(status=200)  # status changed
    assert "Content-Digest" in bad(body=b'{"status": "duplicate"}')
    bad(req=signed(key, nonce="another-nonce-1234567"))  # a recorded answer replayed to another request
    bad(public=NodeKey.generate("x").public_key_bytes)  # not the axis
    bad(hdrs={"Content-Type": "application/json"})  # unsigned
    unbound = dict(headers, **sign_response(202, None, body, axis, now=NOW))
    assert "signature" in bad(hdrs=unbound)  # answers to signed requests must be bound to them
    with pytest.raises(ResponseSignatureError):
        verify_response(
            202,
            headers,
            body,
            public_key=axis.public_key_bytes,
            request_headers=request_headers,
            now=NOW + timedelta(seconds=400),
        )


def test_response_to_an_unsigned_request_is_signed_without_binding() -> None:
    axis = NodeKey.generate("truc-tinh")
    headers = sign_response(401, {}, b"{}", axis, request_headers={"Signature": "garbage("}, now=NOW)
    assert "req" not in headers["Signature-Input"]
    assert (
        verify_response(401, headers, b"{}", public_key=axis.public_key, request_headers=None, now=NOW).bound is False
    )


def test_empty_204_response_is_signed() -> None:
    axis = NodeKey.generate("truc-tinh")
    headers = sign_response(204, None, b"", axis, now=NOW)
    verify_response(204, headers, b"", public_key=axis.public_key_bytes, request_headers=None, now=NOW)


# -- keys and httpx ----------------------------------------------------------------------------------------


def test_node_key_pem_round_trip(tmp_path: Path) -> None:
    key = NodeKey.generate("so-noi-vu-hn")
    path = tmp_path / "node-key.pem"
    key.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert NodeKey.load(path, "so-noi-vu-hn").public_key_bytes == key.public_key_bytes
    with pytest.raises(FileExistsError):
        key.save(path)
    key.save(tmp_path / "locked.pem", password=b"pw")
    assert NodeKey.load(tmp_path / "locked.pem", "x", password=b"pw").public_key_b64 == key.public_key_b64
    with pytest.raises(ValueError, match="invalid node id"):
        NodeKey.generate('bad"id')


def test_httpx_auth_signs_every_request(key: NodeKey) -> None:
    nonces = NonceStore()
    seen: list[VerifiedRequest] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(
            verify_request(
                request.method,
                str(request.url),
                request.headers.multi_items(),
                request.content,
                receiver="truc-tinh",
                resolve_key={key.node_id: key.public_key_bytes}.get,
                remember_nonce=nonces,
            )
        )
        return httpx.Response(204)

    with httpx.Client(transport=httpx.MockTransport(handler), auth=NodeSigningAuth(key, "truc-tinh")) as client:
        client.post("http://axis/api/v1/exchange/envelopes", content=BODY)
        client.get("http://axis/api/v1/exchange/inbox", params={"limit": 50})
    assert [v.keyid for v in seen] == [key.node_id, key.node_id]
    assert seen[0].nonce != seen[1].nonce


# -- the message id header ---------------------------------------------------------------------------------

MID = "ab" * 32


def test_message_id_header_is_signed_when_present(key: NodeKey, nonces: NonceStore) -> None:
    headers = {"Lienthong-Message-Id": MID}
    headers.update(sign_request("POST", URL, headers, BODY, key, to=RECEIVER, now=NOW))
    assert '"lienthong-message-id"' in headers["Signature-Input"]
    check(key, nonces, headers)
    refused(SignatureInvalidError, 401, key, nonces, dict(headers, **{"Lienthong-Message-Id": "cd" * 32}))


def test_message_id_header_not_signed_is_refused(key: NodeKey, nonces: NonceStore) -> None:
    headers = dict(signed(key), **{"Lienthong-Message-Id": MID})  # added after signing
    e = refused(SignatureInvalidError, 401, key, nonces, headers)
    assert "lienthong-message-id" in e.reason


def test_response_message_id_is_signed(key: NodeKey) -> None:
    axis = NodeKey.generate("truc-tinh")
    request_headers = signed(key, method="GET", body=b"")
    headers = {"Content-Type": "application/xml", "Lienthong-Message-Id": MID}
    headers.update(sign_response(200, headers, BODY, axis, request_headers=request_headers, now=NOW))
    verify_response(200, headers, BODY, public_key=axis.public_key, request_headers=request_headers, now=NOW)
    with pytest.raises(ResponseSignatureError):
        verify_response(
            200,
            dict(headers, **{"Lienthong-Message-Id": "cd" * 32}),
            BODY,
            public_key=axis.public_key,
            request_headers=request_headers,
            now=NOW,
        )


# -- the receiving node: Lienthong-To --------------------------------------------------------------------------


def test_request_signed_for_one_node_is_refused_by_another(key: NodeKey, nonces: NonceStore) -> None:
    """The host is not signed: without a signed receiver, node B (which knows the signer and has not seen the
    nonce) would accept a request signed for node A and replayed to it."""
    headers = signed(key, to="truc-tinh")
    check(key, nonces, headers, receiver="truc-tinh")
    e = refused(MisaddressedRequestError, 401, key, NonceStore(), headers, receiver="truc-tw")
    assert "Lienthong-To" in e.reason and "'truc-tinh'" in e.reason and "'truc-tw'" in e.reason
    assert e.code == "misaddressed"


def test_receiver_header_changed_after_signing_is_refused(key: NodeKey, nonces: NonceStore) -> None:
    headers = dict(signed(key, to="truc-tinh"), **{"Lienthong-To": "truc-tw"})
    e = refused(SignatureInvalidError, 401, key, nonces, headers, receiver="truc-tw")
    assert "does not verify" in e.reason
    assert not nonces.seen


def test_request_without_receiver_is_refused_naming_the_header(key: NodeKey, nonces: NonceStore) -> None:
    """What a protocol v1 node sends: a valid signature over the four v1 components and no Lienthong-To."""
    v1 = crafted(key, components=("@method", "@path", "@query", "content-digest"), to=None)
    e = refused(MisaddressedRequestError, 401, key, nonces, v1)
    assert "no Lienthong-To header" in e.reason and "protocol v2" in e.reason
    assert not nonces.seen


def test_receiver_header_present_but_not_signed_is_refused(key: NodeKey, nonces: NonceStore) -> None:
    headers = crafted(key, components=("@method", "@path", "@query", "content-digest"))  # sent, not covered
    e = refused(SignatureInvalidError, 401, key, nonces, headers)
    assert "lienthong-to" in e.reason


def test_signer_refuses_an_invalid_or_contradicting_receiver(key: NodeKey) -> None:
    with pytest.raises(ValueError, match="receiving node id"):
        sign_request("POST", URL, None, BODY, key, to='a"b')
    with pytest.raises(ValueError, match="already names"):
        sign_request("POST", URL, {"Lienthong-To": "truc-tw"}, BODY, key, to="truc-tinh")
    with pytest.raises(ValueError, match="receiving node id"):
        NodeSigningAuth(key, "")


def test_answer_is_bound_to_the_receiver_through_the_request_signature(key: NodeKey) -> None:
    """An answer is bound to the request's signature, which covers Lienthong-To: an answer to a request for
    one node does not verify as the answer to the same request made for another."""
    axis = NodeKey.generate("truc-tinh")
    for_axis = signed(key, to="truc-tinh", nonce="the-same-nonce-123456")
    for_other = signed(key, to="truc-tw", nonce="the-same-nonce-123456")
    body = b"{}"
    answer = {"Content-Type": "application/json"}
    answer.update(sign_response(200, answer, body, axis, request_headers=for_axis, now=NOW))
    verify_response(200, answer, body, public_key=axis.public_key, request_headers=for_axis, now=NOW)
    with pytest.raises(ResponseSignatureError):
        verify_response(200, answer, body, public_key=axis.public_key, request_headers=for_other, now=NOW)
