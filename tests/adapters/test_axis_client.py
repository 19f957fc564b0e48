"""AxisClient against a real HTTP server (uvicorn on loopback) built on adapters.httpsig, and the attacks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from adapters import (
    AxisClient,
    InboxItem,
    NodeKey,
    PermanentDeliveryError,
    ResponseSignatureError,
    RetryableDeliveryError,
    sign_response,
)
from adapters.httpsig import sign_request
from tests.adapters.fake_axis import MAX_BODY, AxisState, serve
from tests.adapters.sigtools import ClaimsRsa, NonceStore, crafted

SENDER = NodeKey.generate("so-noi-vu-hn")
RECIPIENT = NodeKey.generate("bo-noi-vu")
AXIS = NodeKey.generate("truc-tinh")
ENVELOPE = b'<?xml version="1.0"?><edXML>b\xc3\xa1o c\xc3\xa1o th\xc3\xa1ng 3</edXML>'
MID = hashlib.sha256(ENVELOPE).hexdigest()
EXCHANGE = "/api/v1/exchange"


@dataclass
class Axis:
    url: str
    state: AxisState

    def client(self, key: NodeKey = SENDER, **kw: object) -> AxisClient:
        kw.setdefault("peer_id", AXIS.node_id)
        return AxisClient(self.url, key, AXIS.public_key_bytes, timeout=5.0, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[str, AxisState]]:
    state = AxisState(AXIS, {k.node_id: k.public_key_bytes for k in (SENDER, RECIPIENT)})
    with serve(state) as url:
        yield url, state


@pytest.fixture
def axis(running: tuple[str, AxisState]) -> Axis:
    url, state = running
    state.nonces, state.envelopes, state.deliveries, state.refused = NonceStore(), {}, {}, []
    state.tamper_fetch = False
    return Axis(url, state)


# -- happy paths -------------------------------------------------------------------------------------------


def test_send_pull_fetch_ack(axis: Axis) -> None:
    with axis.client() as sender:
        receipt = sender.send_envelope(ENVELOPE, MID)
        assert (receipt.message_id, receipt.status, receipt.recipients) == (MID, "accepted", ("000.00.00.G22",))
        again = sender.send_envelope(ENVELOPE, MID)  # a retry after a lost answer
        assert again.status == "duplicate"
        assert sender.inbox() == []  # nothing for the sender's node
    with axis.client(RECIPIENT) as recipient:
        (item,) = recipient.inbox(limit=10)
        assert isinstance(item, InboxItem)
        assert (item.message_id, item.kind, item.size) == (MID, "document", len(ENVELOPE))
        fetched = recipient.fetch(item.delivery_id)
        assert (fetched.data, fetched.message_id) == (ENVELOPE, MID)
        recipient.ack(item.delivery_id, "done")
        recipient.ack(item.delivery_id, "done")  # idempotent
        assert recipient.inbox() == []
    assert axis.state.deliveries[item.delivery_id].state == "done"
    assert axis.state.refused == []


def test_ack_fail_with_reason(axis: Axis) -> None:
    with axis.client() as sender:
        sender.send_envelope(ENVELOPE, MID)
    with axis.client(RECIPIENT) as recipient:
        (item,) = recipient.inbox()
        recipient.ack(item.delivery_id, "fail", "chữ ký không hợp lệ")
    assert axis.state.deliveries[item.delivery_id].reason == "chữ ký không hợp lệ"


def test_client_refuses_bad_arguments(axis: Axis) -> None:
    with axis.client() as client:
        with pytest.raises(ValueError, match="64 lowercase hex"):
            client.send_envelope(ENVELOPE, MID.upper())
        for bad in ("../envelopes", "a/b", "x?y", "%2e%2e", "", ".."):
            with pytest.raises(ValueError, match="delivery id"):
                client.fetch(bad)
        with pytest.raises(ValueError, match="outcome"):
            client.ack("d1", "maybe")  # type: ignore[arg-type]


# -- failures, classified ----------------------------------------------------------------------------------


def test_server_refusal_is_permanent_with_the_problem(axis: Axis) -> None:
    with axis.client() as client, pytest.raises(PermanentDeliveryError) as info:
        client.send_envelope(ENVELOPE, "0" * 64)
    e = info.value
    assert (e.status, e.problem_type, e.signed) == (400, "urn:lienthong:problem:bad-message-id", True)
    assert e.detail and "SHA-256" in e.detail


def test_unknown_node_gets_401_permanent(axis: Axis) -> None:
    with axis.client(NodeKey.generate("stranger")) as client, pytest.raises(PermanentDeliveryError) as info:
        client.inbox()
    assert info.value.status == 401
    assert not info.value.signed  # a refusal of the request's signature is never bound to it (protocol §4)
    # so a node, which requires signed errors, retries and alerts instead of taking it as final
    strict = axis.client(NodeKey.generate("stranger"), require_signed_errors=True)
    with strict, pytest.raises(ResponseSignatureError) as retry:
        strict.inbox()
    assert retry.value.status == 401


def test_a_refusal_elicited_with_a_copied_signature_is_not_final(axis: Axis) -> None:
    """A man in the middle forwards the node's request with another body: the axis's signed 400 is not bound
    to the node's request, so a client that requires signed errors does not take it as a final refusal."""

    def man_in_the_middle(request: httpx.Request) -> httpx.Response:
        tampered = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        answer = httpx.post(str(request.url), content=request.content + b"<!-- x -->", headers=tampered, timeout=5)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    transport = httpx.MockTransport(man_in_the_middle)
    client = AxisClient(
        axis.url, SENDER, AXIS.public_key_bytes, peer_id=AXIS.node_id, transport=transport, require_signed_errors=True
    )
    with client, pytest.raises(ResponseSignatureError) as info:
        client.send_envelope(ENVELOPE, MID)
    assert info.value.status == 400
    assert axis.state.refused and axis.state.refused[-1][0] == 400
    assert axis.state.envelopes == {}


def test_fetch_unknown_delivery_is_404(axis: Axis) -> None:
    with axis.client(RECIPIENT) as client, pytest.raises(PermanentDeliveryError) as info:
        client.fetch("d999")
    assert info.value.status == 404


def test_connection_refused_is_retryable() -> None:
    from tests.adapters.fake_axis import free_port

    client = AxisClient(f"http://127.0.0.1:{free_port()}", SENDER, AXIS.public_key, peer_id=AXIS.node_id, timeout=2.0)
    with client, pytest.raises(RetryableDeliveryError) as info:
        client.send_envelope(ENVELOPE, MID)
    assert info.value.status is None


def mock(handler: Callable[[httpx.Request], httpx.Response], **kw: object) -> AxisClient:
    transport = httpx.MockTransport(handler)
    return AxisClient(
        "http://axis.test", SENDER, AXIS.public_key_bytes, peer_id=AXIS.node_id, transport=transport, **kw
    )  # type: ignore[arg-type]


def signed_answer(
    request: httpx.Request, status: int, body: bytes, key: NodeKey = AXIS, **headers: str
) -> httpx.Response:
    all_headers = {"Content-Type": "application/json", **headers}
    all_headers.update(sign_response(status, all_headers, body, key, request_headers=request.headers.multi_items()))
    return httpx.Response(status, headers=all_headers, content=body)


def test_timeouts_and_resets_are_retryable() -> None:
    for exc in (httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow"), httpx.RemoteProtocolError("reset")):

        def handler(request: httpx.Request, exc: Exception = exc) -> httpx.Response:
            raise exc

        with mock(handler) as client, pytest.raises(RetryableDeliveryError):
            client.inbox()


@pytest.mark.parametrize(("status", "retry_after", "expected"), [(503, "7", 7.0), (429, "2", 2.0), (500, None, None)])
def test_5xx_and_429_are_retryable_with_retry_after(
    status: int, retry_after: str | None, expected: float | None
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Retry-After": retry_after} if retry_after else {}
        return httpx.Response(status, headers=headers, content=b"busy")  # unsigned, as a proxy would answer

    with mock(handler) as client, pytest.raises(RetryableDeliveryError) as info:
        client.send_envelope(ENVELOPE, MID)
    assert (info.value.status, info.value.retry_after) == (status, expected)
    assert not isinstance(info.value, ResponseSignatureError)


def test_unsigned_4xx_is_permanent_unless_signed_errors_are_required() -> None:
    problem = json.dumps({"type": "urn:lienthong:problem:unknown-recipient", "title": "x", "status": 422}).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, headers={"Content-Type": "application/problem+json"}, content=problem)

    with mock(handler) as client, pytest.raises(PermanentDeliveryError) as info:
        client.send_envelope(ENVELOPE, MID)
    assert (info.value.signed, info.value.problem_type) == (False, "urn:lienthong:problem:unknown-recipient")
    with mock(handler, require_signed_errors=True) as client, pytest.raises(ResponseSignatureError):
        client.send_envelope(ENVELOPE, MID)


# -- answers that are not authentic ------------------------------------------------------------------------

RECEIPT = json.dumps({"message_id": MID, "status": "accepted", "recipients": []}).encode()


def test_unsigned_success_is_refused() -> None:
    client = mock(lambda r: httpx.Response(202, json=json.loads(RECEIPT)))
    with client, pytest.raises(ResponseSignatureError):
        client.send_envelope(ENVELOPE, MID)


def test_answer_signed_by_another_key_is_refused() -> None:
    client = mock(lambda r: signed_answer(r, 202, RECEIPT, key=NodeKey.generate("truc-tinh")))
    with client, pytest.raises(ResponseSignatureError):
        client.send_envelope(ENVELOPE, MID)


def test_answer_with_body_changed_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        good = signed_answer(request, 202, RECEIPT)
        return httpx.Response(202, headers=good.headers, content=RECEIPT.replace(b"accepted", b"duplicate"))

    with mock(handler) as client, pytest.raises(ResponseSignatureError, match="Content-Digest"):
        client.send_envelope(ENVELOPE, MID)


def test_recorded_answer_replayed_to_another_request_is_refused() -> None:
    recorded: list[httpx.Response] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if not recorded:
            recorded.append(signed_answer(request, 200, b'{"items": []}'))
        return httpx.Response(200, headers=recorded[0].headers, content=b'{"items": []}')

    with mock(handler) as client:
        assert client.inbox() == []
        with pytest.raises(ResponseSignatureError, match="does not verify"):
            client.inbox()  # same method and path, but another request: the old answer is not bound to it


def test_receipt_for_another_message_is_refused() -> None:
    other = json.dumps({"message_id": "f" * 64, "status": "accepted", "recipients": []}).encode()
    with mock(lambda r: signed_answer(r, 202, other)) as client, pytest.raises(RetryableDeliveryError):
        client.send_envelope(ENVELOPE, MID)


def test_fetched_bytes_must_match_the_listing(axis: Axis) -> None:
    with axis.client() as sender:
        sender.send_envelope(ENVELOPE, MID)
    axis.state.tamper_fetch = True
    with axis.client(RECIPIENT) as recipient:
        (item,) = recipient.inbox()
        with pytest.raises(ResponseSignatureError, match="inbox listed"):
            recipient.fetch(item.delivery_id)
        with pytest.raises(ResponseSignatureError):
            AxisClient(axis.url, RECIPIENT, AXIS.public_key, peer_id=AXIS.node_id).fetch(
                item.delivery_id, expected=item
            )


def test_oversized_answer_is_refused() -> None:
    client = mock(lambda r: signed_answer(r, 200, b'{"items": []}' + b" " * 2000), max_response_bytes=1000)
    with client, pytest.raises(PermanentDeliveryError, match="over"):
        client.inbox()


# -- attacks on the server: a server built on verify_request answers the right status ----------------------


def raw_post(axis: Axis, headers: dict[str, str], body: bytes = ENVELOPE, path: str = "/envelopes") -> httpx.Response:
    return httpx.post(axis.url + EXCHANGE + path, headers=headers, content=body)


def signed_headers(
    key: NodeKey, axis: Axis, body: bytes = ENVELOPE, path: str = "/envelopes", to: str = AXIS.node_id
) -> dict[str, str]:
    headers = {"Content-Type": "application/xml", "Lienthong-Message-Id": hashlib.sha256(body).hexdigest()}
    headers.update(sign_request("POST", axis.url + EXCHANGE + path, headers, body, key, to=to))
    return headers


def test_attack_unsigned_request(axis: Axis) -> None:
    r = raw_post(axis, {"Content-Type": "application/xml", "Lienthong-Message-Id": MID})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "urn:lienthong:problem:unauthenticated"
    assert not axis.state.envelopes


def test_attack_wrong_key(axis: Axis) -> None:
    assert raw_post(axis, signed_headers(NodeKey.generate(SENDER.node_id), axis)).status_code == 401
    assert not axis.state.envelopes


def test_attack_replayed_request(axis: Axis) -> None:
    headers = signed_headers(SENDER, axis)
    assert raw_post(axis, headers).status_code == 202
    r = raw_post(axis, headers)
    assert r.status_code == 401
    assert "replayed" in r.json()["detail"]


def test_attack_request_signed_for_another_node_is_refused(axis: Axis) -> None:
    """A request the sender signed for another node (say its other axis, which a node that received it
    resends here within the window: the nonce is fresh here) is refused 401, naming the header."""
    headers = signed_headers(SENDER, axis, to="truc-tw")
    r = raw_post(axis, headers)
    assert r.status_code == 401, r.text
    assert r.json()["type"] == "urn:lienthong:problem:unauthenticated"
    assert "Lienthong-To" in r.json()["detail"] and "'truc-tw'" in r.json()["detail"]
    assert not axis.state.envelopes
    assert not axis.state.nonces.seen  # nothing spent: the honest request to truc-tinh is not affected
    forged = dict(headers, **{"Lienthong-To": AXIS.node_id})  # and re-addressing it breaks the signature
    assert raw_post(axis, forged).status_code == 401
    assert not axis.state.envelopes


def test_attack_request_without_receiver_is_refused(axis: Axis) -> None:
    """What a node of protocol v1 sends: signed, fresh, no Lienthong-To: refused 401 naming the header."""
    from datetime import UTC, datetime

    url = axis.url + EXCHANGE + "/envelopes"
    v1 = crafted(
        SENDER,
        url=url,
        body=ENVELOPE,
        created=datetime.now(UTC),
        components=("@method", "@path", "@query", "content-digest"),
        to=None,
    )
    r = raw_post(axis, {"Content-Type": "application/xml", **v1})
    assert r.status_code == 401, r.text
    assert "no Lienthong-To header" in r.json()["detail"]
    assert not axis.state.envelopes


def test_client_for_another_node_is_refused(axis: Axis) -> None:
    """A client configured with the wrong peer id gets the axis's (unbound) 401: never taken as final when it
    requires signed errors, as a node's workers do."""
    with (
        axis.client(peer_id="truc-tw", require_signed_errors=True) as client,
        pytest.raises(ResponseSignatureError) as info,
    ):
        client.send_envelope(ENVELOPE, MID)
    assert info.value.status == 401
    # not final, but the operator still reads what the axis said (marked as unauthenticated), not only that
    # the answer was not signed for this request
    assert "Lienthong-To" in str(info.value) and "unauthenticated" in str(info.value)
    with axis.client(peer_id="truc-tw") as client, pytest.raises(PermanentDeliveryError) as refused:
        client.send_envelope(ENVELOPE, MID)
    assert refused.value.status == 401 and "Lienthong-To" in str(refused.value)
    assert not axis.state.envelopes


def test_attack_tampered_body_and_path(axis: Axis) -> None:
    headers = signed_headers(SENDER, axis)
    assert raw_post(axis, headers, body=ENVELOPE + b" ").status_code == 400
    assert raw_post(axis, headers, path="/inbox/d1/ack").status_code == 401
    assert not axis.state.envelopes


def test_attack_expired_alg_mismatch_no_digest_coverage(axis: Axis) -> None:
    from datetime import UTC, datetime, timedelta

    url = axis.url + EXCHANGE + "/envelopes"
    base = {"Content-Type": "application/xml", "Lienthong-Message-Id": MID}
    old = crafted(SENDER, url=url, body=ENVELOPE, created=datetime.now(UTC) - timedelta(seconds=400))
    assert raw_post(axis, {**base, **old}).status_code == 401
    rsa = crafted(SENDER, url=url, body=ENVELOPE, created=datetime.now(UTC), algorithm=ClaimsRsa)
    assert raw_post(axis, {**base, **rsa}).status_code == 401
    partial = crafted(SENDER, url=url, body=None, created=datetime.now(UTC), components=("@method", "@path"))
    assert raw_post(axis, {**base, **partial, "Content-Digest": "sha-256=:AAAA:"}).status_code in (400, 401)
    assert not axis.state.envelopes


def test_attack_duplicate_labels_and_oversized_header(axis: Axis) -> None:
    headers = signed_headers(SENDER, axis)
    dup = dict(headers, **{"Signature-Input": headers["Signature-Input"] + ", " + headers["Signature-Input"]})
    assert raw_post(axis, dup).status_code == 400
    big = dict(headers, **{"Signature-Input": headers["Signature-Input"] + ';x="' + "a" * 6000 + '"'})
    assert raw_post(axis, big).status_code == 400
    assert not axis.state.envelopes


def test_attack_oversized_upload(axis: Axis) -> None:
    body = b"<x>" + b"a" * MAX_BODY + b"</x>"
    with axis.client() as client, pytest.raises(PermanentDeliveryError) as info:
        client.send_envelope(body, hashlib.sha256(body).hexdigest())
    assert info.value.status == 413
    # refused before the body is known to be the signed one: not bound to the request (a proxy could elicit
    # it with any Content-Length), so not final for a client that requires signed errors
    assert not info.value.signed
    assert not axis.state.envelopes


def test_attack_reading_another_nodes_delivery(axis: Axis) -> None:
    with axis.client() as sender:
        sender.send_envelope(ENVELOPE, MID)
        with pytest.raises(PermanentDeliveryError) as info:
            sender.fetch("d1")  # delivered to bo-noi-vu, not to the sender
    assert info.value.status == 404


def test_loop_detected_is_permanent() -> None:
    problem = json.dumps({"type": "urn:lienthong:problem:loop", "title": "Routing loop", "status": 508}).encode()
    with mock(lambda r: signed_answer(r, 508, problem)) as client, pytest.raises(PermanentDeliveryError) as info:
        client.send_envelope(ENVELOPE, MID)
    assert (info.value.status, info.value.problem_type, info.value.signed) == (508, "urn:lienthong:problem:loop", True)
