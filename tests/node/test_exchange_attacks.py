"""Attacks on a running axis and agency node: each refused with the right HTTP status, logged, nothing stored.

The provincial axis (truc-tinh) and the department's node (so-tai-chinh) of the session's network are
attacked over real HTTP; the axis's own database is then read to prove nothing was accepted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from adapters.httpsig import NodeKey, sign_request
from node.config import load_settings
from node.runtime import NodeRuntime
from node.samples import MINISTRY
from schemas import build_message
from signing.devpki import DevPki
from signing.envelope import envelope_message_id, sign_envelope
from storage.exchange import EnvelopeRow
from tests.node.exchange_network import MAX_AXIS_UPLOAD, Exchange, report

pytestmark = pytest.mark.slow
ENVELOPES = "/api/v1/exchange/envelopes"


@pytest.fixture(scope="module")
def axis_db(exchange: Exchange) -> Iterator[NodeRuntime]:
    runtime = NodeRuntime(load_settings(exchange.network.node("truc-tinh").config), create=False)
    yield runtime
    runtime.close()


def stored_count(runtime: NodeRuntime, body: bytes) -> int:
    """How many rows the axis holds for the envelope ``body`` (other tests' traffic flows meanwhile)."""
    try:
        message_id = envelope_message_id(body)
    except Exception:
        return 0
    with runtime.session() as s:
        q = select(func.count()).select_from(EnvelopeRow).where(EnvelopeRow.message_id == message_id)
        return int(s.scalar(q) or 0)


def node_key(exchange: Exchange, node_id: str) -> NodeKey:
    return NodeKey.load(exchange.network.directory / node_id / "node-key.pem", node_id)


def signed_envelope(
    exchange: Exchange, number: str, *, organ: str = "000.01.41.H41", mangle: bytes | None = None
) -> bytes:
    pki = DevPki.load(exchange.network.directory / "pki")
    unsigned = build_message(report(number))
    if mangle is not None:
        unsigned = unsigned.replace(b"bao-cao-ngan-sach-2026-10.pdf", mangle)
    return sign_envelope(unsigned, pki.signing_key(pki.organ(organ).organisation.label))


def post(
    exchange: Exchange, node: str, body: bytes, *, key: NodeKey | None = None, message_id: str | None = None
) -> httpx.Response:
    url = exchange.network.node("truc-tinh").url + ENVELOPES
    headers = {"content-type": "application/xml", "lienthong-message-id": message_id or envelope_message_id(body)}
    headers |= sign_request("POST", url, headers, body, key or node_key(exchange, node), to="truc-tinh")
    return httpx.post(url, content=body, headers=headers, timeout=30)


def logged(exchange: Exchange, node_id: str, text: str) -> bool:
    deadline = time.monotonic() + 5
    log = exchange.network.directory / f"{node_id}.log"
    while time.monotonic() < deadline:
        if text in log.read_text(encoding="utf-8", errors="replace"):
            return True
        time.sleep(0.1)
    return False


def problem(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = dict(r.json())
    assert body["status"] == status and str(body["type"]).startswith("urn:lienthong:problem:")
    return body


def test_an_honest_envelope_is_accepted_as_the_baseline(exchange: Exchange, axis_db: NodeRuntime) -> None:
    body = signed_envelope(exchange, "301")
    assert stored_count(axis_db, body) == 0
    r = post(exchange, "so-tai-chinh", body)
    assert r.status_code == 202, r.text
    assert r.json()["recipients"] == [MINISTRY.organ_id]
    assert stored_count(axis_db, body) == 1


def test_unsigned_request_is_401(exchange: Exchange, axis_db: NodeRuntime) -> None:
    body = signed_envelope(exchange, "302")
    url = exchange.network.node("truc-tinh").url + ENVELOPES
    r = httpx.post(url, content=body, headers={"lienthong-message-id": envelope_message_id(body)})
    problem(r, 401)
    assert stored_count(axis_db, body) == 0
    assert logged(exchange, "truc-tinh", "auth.failed")


def test_wrong_key_is_401(exchange: Exchange, axis_db: NodeRuntime) -> None:
    body = signed_envelope(exchange, "303")
    impostor = NodeKey.generate("so-tai-chinh")  # the right name, not the registered key
    problem(post(exchange, "so-tai-chinh", body, key=impostor), 401)
    problem(post(exchange, "nobody", body, key=NodeKey.generate("nobody")), 401)
    assert stored_count(axis_db, body) == 0


def test_replayed_request_is_401(exchange: Exchange, axis_db: NodeRuntime) -> None:
    body = signed_envelope(exchange, "304")
    url = exchange.network.node("truc-tinh").url + ENVELOPES
    headers = {"content-type": "application/xml", "lienthong-message-id": envelope_message_id(body)}
    headers |= sign_request("POST", url, headers, body, node_key(exchange, "so-tai-chinh"), to="truc-tinh")
    first = httpx.post(url, content=body, headers=headers)
    assert first.status_code == 202, first.text
    again = problem(httpx.post(url, content=body, headers=headers), 401)
    assert "nonce" in str(again["detail"]).lower() or "replay" in str(again["detail"]).lower()
    assert stored_count(axis_db, body) == 1  # the first, once


def test_from_forged_for_another_agency_is_403(exchange: Exchange, axis_db: NodeRuntime) -> None:
    # the province's node, with its own valid key, hands over the department's envelope
    body = signed_envelope(exchange, "305")
    answer = problem(post(exchange, "ubnd-tinh", body), 403)
    assert "000.01.41.H41" in str(answer["detail"])
    # the province's own seal on an envelope whose From is the department: the signature check refuses it
    forged = signed_envelope(exchange, "305", organ="000.00.00.H41")
    problem(post(exchange, "ubnd-tinh", forged), 422)
    assert stored_count(axis_db, body) == 0
    assert stored_count(axis_db, forged) == 0
    assert logged(exchange, "truc-tinh", "envelope.refused")


def test_tampered_envelope_is_422(exchange: Exchange, axis_db: NodeRuntime) -> None:
    body = signed_envelope(exchange, "306")
    tampered = body.replace("ngân sách".encode(), "ngân quỹ".encode(), 1)
    assert tampered != body
    problem(post(exchange, "so-tai-chinh", tampered), 422)
    assert stored_count(axis_db, tampered) == 0


def test_oversized_upload_is_413(exchange: Exchange, axis_db: NodeRuntime) -> None:
    body = signed_envelope(exchange, "307") + b" " * MAX_AXIS_UPLOAD
    problem(post(exchange, "so-tai-chinh", body), 413)
    assert stored_count(axis_db, body) == 0


def test_path_traversal_in_an_attachment_name_is_refused(exchange: Exchange, axis_db: NodeRuntime) -> None:
    body = signed_envelope(exchange, "308", mangle=b"../../../etc/cron.d/x.pdf")
    assert b"../../../etc/cron.d/x.pdf" in body
    r = post(exchange, "so-tai-chinh", body)
    assert r.status_code in (400, 422), r.text
    assert "cron.d" in r.text or "attachment" in r.text.lower()
    assert stored_count(axis_db, body) == 0


def test_a_clerk_cannot_make_the_node_attach_a_file_of_its_own(exchange: Exchange) -> None:
    """An attachment of ``POST /api/v1/messages`` names one of the uploaded files, never a path on the node:
    otherwise a clerk's token could mail out the node's private key or its database."""
    from node.cli.demo import message_form

    plan = exchange.network.node("so-tai-chinh")
    secret = plan.config.parent / "node-key.pem"
    headers = {"Authorization": f"Bearer {plan.token}"}
    spec, files = message_form(report("309"))

    def sent_out() -> int:
        r = httpx.get(f"{plan.url}/api/v1/messages", params={"direction": "out", "limit": 500}, headers=headers)
        return len(r.json()["items"])

    before = sent_out()
    for reference in (str(secret), "../node-key.pem", f"../../{plan.node_id}/node-key.pem"):
        attack = {**spec, "attachments": [{"file": reference, "content_type": "application/pdf"}]}
        r = httpx.post(
            f"{plan.url}/api/v1/messages",
            data={"message": json.dumps(attack, ensure_ascii=False)},
            files=files,  # an honest upload beside it: only its own name may be used
            headers=headers,
            timeout=30,
        )
        body = problem(r, 422)
        assert "not one of the uploaded files" in str(body["detail"]), body
        assert secret.read_text()[40:80] not in r.text
    assert sent_out() == before


def test_a_token_used_beyond_its_role_is_403(exchange: Exchange) -> None:
    plan = exchange.network.node("so-tai-chinh")
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "node.cli",
            "token",
            "create",
            "kiem-toan",
            "--role",
            "auditor",
            "--config",
            str(plan.config),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    auditor = made.stdout.strip().splitlines()[-1]
    spec = {"from": {"organ_id": "000.01.41.H41", "organ_name": "x"}}
    r = httpx.post(
        f"{plan.url}/api/v1/messages",
        data={"message": json.dumps(spec)},
        headers={"Authorization": f"Bearer {auditor}"},
    )
    body = problem(r, 403)
    assert "auditor" in str(body["detail"])
    problem(httpx.get(f"{plan.url}/api/v1/messages", headers={"Authorization": f"Bearer {auditor}"}), 403)
    problem(httpx.get(f"{plan.url}/api/v1/messages"), 401)
    problem(httpx.get(f"{plan.url}/api/v1/messages", headers={"Authorization": "Bearer lt_not-a-token"}), 401)
    assert logged(exchange, "so-tai-chinh", "auth.failed")


def test_another_nodes_delivery_cannot_be_fetched(exchange: Exchange) -> None:
    # the ministry's node asks the provincial axis for an inbox: it is not registered there
    url = exchange.network.node("truc-tinh").url + "/api/v1/exchange/inbox"
    headers = sign_request("GET", url, {}, b"", node_key(exchange, "bo-tai-chinh"), to="truc-tinh")
    problem(httpx.get(url, headers=headers), 401)


def test_an_oversized_clerk_upload_is_413_before_it_is_read(exchange: Exchange) -> None:
    plan = exchange.network.node("truc-tinh")  # the axis: its limit is the small one of this network
    r = httpx.post(
        plan.url + "/api/v1/messages",
        content=b"x" * (MAX_AXIS_UPLOAD + 5 * 1024 * 1024),
        headers={"Authorization": f"Bearer {plan.token}", "content-type": "multipart/form-data; boundary=x"},
    )
    problem(r, 413)


def test_a_refusal_is_bound_only_to_a_request_that_was_accepted(exchange: Exchange, axis_db: NodeRuntime) -> None:
    """Whoever sees a node's request on the way (a proxy) must not get the axis to sign a refusal bound to it:
    the node would take that signed 401 as final and dead-letter its message. So the Signature of a request
    is reused with another body, and the request is replayed: both are refused, and neither refusal verifies
    as the answer to the node's request; the honest answer does."""
    from adapters.errors import ResponseSignatureError
    from adapters.httpsig import verify_response

    axis = node_key(exchange, "truc-tinh")
    body = signed_envelope(exchange, "310")
    url = exchange.network.node("truc-tinh").url + ENVELOPES
    headers = {"content-type": "application/xml", "lienthong-message-id": envelope_message_id(body)}
    headers |= sign_request("POST", url, headers, body, node_key(exchange, "so-tai-chinh"), to="truc-tinh")

    def bound(r: httpx.Response) -> bool:
        try:
            verify_response(
                r.status_code, r.headers.multi_items(), r.content, public_key=axis.public_key, request_headers=headers
            )
        except ResponseSignatureError:
            return False
        return True

    other = signed_envelope(exchange, "311")
    forged = httpx.post(url, content=other, headers=headers, timeout=30)  # the node's signature, another body
    problem(forged, 400)
    assert "signature" in forged.headers  # still signed by the axis, as every exchange answer is...
    assert not bound(forged)  # ...but not as the answer to the node's request
    honest = httpx.post(url, content=body, headers=headers, timeout=30)
    assert honest.status_code == 202, honest.text
    assert bound(honest)
    replayed = httpx.post(url, content=body, headers=headers, timeout=30)
    problem(replayed, 401)
    assert not bound(replayed)
    assert stored_count(axis_db, other) == 0


def test_a_stranger_cannot_make_the_axis_wait_for_a_body(exchange: Exchange) -> None:
    """The signature is checked before the body is read: an unsigned request declaring a large body is
    refused at once, not after the axis has waited for (and held) megabytes of it."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(exchange.network.node("truc-tinh").url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(
            f"POST {ENVELOPES} HTTP/1.1\r\nHost: {where.netloc}\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {MAX_AXIS_UPLOAD - 1000}\r\n\r\n<edXML>".encode()
        )
        sock.settimeout(5)
        try:
            answer = sock.recv(4096)
        except TimeoutError:
            answer = b""
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_a_request_signed_for_one_node_is_refused_by_another(exchange: Exchange) -> None:
    """The host is not signed and each node keeps its own nonces: a request the provincial axis signed for its
    parent, resent by whoever got it to a node below it that knows the axis's key, must not be good there.
    It is refused 401 naming Lienthong-To, spends nothing, and the same request is still good where it was
    meant to go."""
    body = signed_envelope(exchange, "311")
    headers = {"content-type": "application/xml", "lienthong-message-id": envelope_message_id(body)}
    signed = sign_request(
        "POST",
        exchange.network.node("truc-tw").url + ENVELOPES,
        headers,
        body,
        node_key(exchange, "truc-tinh"),
        to="truc-tw",
    )
    headers |= signed
    elsewhere = exchange.network.node("so-tai-chinh").url + ENVELOPES  # it takes pushes from truc-tinh
    refused = problem(httpx.post(elsewhere, content=body, headers=headers, timeout=30), 401)
    assert refused["type"] == "urn:lienthong:problem:unauthenticated"
    assert "Lienthong-To" in str(refused["detail"]) and "'truc-tw'" in str(refused["detail"])
    assert "'so-tai-chinh'" in str(refused["detail"])
    assert logged(exchange, "so-tai-chinh", "for node 'truc-tw' (Lienthong-To)")
    # re-addressed to the node it is sent to, the signature no longer verifies
    readdressed = {k: v for k, v in headers.items() if k.lower() != "lienthong-to"} | {"Lienthong-To": "so-tai-chinh"}
    assert "does not verify" in str(problem(httpx.post(elsewhere, content=body, headers=readdressed), 401)["detail"])
    # and where it was meant to go, it is accepted
    meant = httpx.post(exchange.network.node("truc-tw").url + ENVELOPES, content=body, headers=headers, timeout=30)
    assert meant.status_code in (200, 202), meant.text


def test_a_request_without_lienthong_to_is_refused(exchange: Exchange, axis_db: NodeRuntime) -> None:
    """What a node of protocol v1 sends (signed, fresh, its message id covered, no Lienthong-To): refused 401
    with a reason naming the missing header and the protocol version, audited, nothing stored."""
    import secrets
    from datetime import UTC, datetime

    from tests.adapters.sigtools import crafted

    body = signed_envelope(exchange, "312")
    url = exchange.network.node("truc-tinh").url + ENVELOPES
    message_id = envelope_message_id(body)
    v1 = crafted(
        node_key(exchange, "so-tai-chinh"),
        url=url,
        body=body,
        created=datetime.now(UTC),
        nonce=secrets.token_urlsafe(16),
        to=None,
        fields=[("Lienthong-Message-Id", message_id)],
        components=("@method", "@path", "@query", "content-digest", "lienthong-message-id"),
    )
    assert "Lienthong-To" not in v1 and "lienthong-to" not in v1["Signature-Input"]
    r = httpx.post(url, content=body, headers={"content-type": "application/xml", **v1}, timeout=30)
    detail = str(problem(r, 401)["detail"])
    assert "no Lienthong-To header" in detail and "protocol v2" in detail
    assert stored_count(axis_db, body) == 0
    assert logged(exchange, "truc-tinh", "no Lienthong-To header")
