"""A small axis written against the protocol with adapters.httpsig, served by uvicorn on loopback for the tests.

It implements exactly what docs/protocol.md says the server does, so the client is tested against a real
HTTP server, and the attack tests can assert the statuses a server built on ``verify_request`` answers.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.errors import HttpSignatureError
from adapters.httpsig import NodeKey, sign_response, verify_request
from tests.adapters.sigtools import NonceStore

MAX_BODY = 64 * 1024
RECIPIENT = "000.00.00.G22"


@dataclass
class Delivery:
    delivery_id: str
    message_id: str
    data: bytes
    recipient_node: str
    state: str = "queued"
    reason: str | None = None


@dataclass
class AxisState:
    key: NodeKey
    peers: dict[str, bytes]
    nonces: NonceStore = field(default_factory=NonceStore)
    envelopes: dict[str, bytes] = field(default_factory=dict)
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (status, reason) of refused requests
    route_to: str = "bo-noi-vu"  # the node every accepted envelope is delivered to
    tamper_fetch: bool = False  # serve bytes other than the ones listed (correctly signed): a lying axis


class ProblemError(Exception):
    def __init__(self, status: int, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail = status, slug, detail


def create_app(state: AxisState) -> Starlette:
    def answer(request: Request, status: int, body: bytes, media_type: str, **extra: str) -> Response:
        headers = {"Content-Type": media_type, **extra}
        # bound only to a request that was accepted (docs/protocol.md §4): no signing oracle for a proxy
        accepted = getattr(request.state, "verified", False)
        bound_to = request.headers.items() if accepted else None
        headers.update(sign_response(status, headers, body, state.key, request_headers=bound_to))
        return Response(body, status_code=status, headers=headers)

    def problem(request: Request, e: ProblemError) -> Response:
        doc = {"type": f"urn:lienthong:problem:{e.slug}", "title": e.slug, "status": e.status, "detail": e.detail}
        return answer(request, e.status, json.dumps(doc).encode(), "application/problem+json")

    async def authenticate(request: Request) -> tuple[str, bytes]:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise ProblemError(413, "too-large", f"the body is over {MAX_BODY} bytes")
        body = await request.body()
        try:
            verified = verify_request(
                request.method,
                str(request.url),
                request.headers.items(),
                body,
                receiver=state.key.node_id,
                resolve_key=state.peers.get,
                remember_nonce=state.nonces,
            )
        except HttpSignatureError as e:
            state.refused.append((e.http_status, e.reason))
            raise ProblemError(e.http_status, "unauthenticated", e.reason) from None
        request.state.verified = True
        return verified.keyid, body

    def endpoint(fn: Any) -> Any:
        async def wrapped(request: Request) -> Response:
            try:
                return await fn(request)  # type: ignore[no-any-return]
            except ProblemError as e:
                return problem(request, e)

        return wrapped

    @endpoint
    async def post_envelope(request: Request) -> Response:
        _, body = await authenticate(request)
        message_id = request.headers.get("lienthong-message-id", "")
        if message_id != hashlib.sha256(body).hexdigest():
            raise ProblemError(400, "bad-message-id", "Lienthong-Message-Id is not the SHA-256 of the envelope")
        status, word = 200, "duplicate"
        if message_id not in state.envelopes:
            state.envelopes[message_id] = body
            delivery_id = f"d{len(state.deliveries) + 1}"
            state.deliveries[delivery_id] = Delivery(delivery_id, message_id, body, state.route_to)
            status, word = 202, "accepted"
        payload = {"message_id": message_id, "status": word, "recipients": [RECIPIENT]}
        return answer(request, status, json.dumps(payload).encode(), "application/json")

    @endpoint
    async def inbox(request: Request) -> Response:
        keyid, _ = await authenticate(request)
        limit = int(request.query_params.get("limit", "50"))
        items = [
            {
                "delivery_id": d.delivery_id,
                "message_id": d.message_id,
                "sender": "000.00.01.H26",
                "recipient": RECIPIENT,
                "kind": "document",
                "size": len(d.data),
                "sha256": hashlib.sha256(d.data).hexdigest(),
                "received_at": datetime(2025, 3, 14, tzinfo=UTC).isoformat(),
            }
            for d in state.deliveries.values()
            if d.recipient_node == keyid and d.state == "queued"
        ][:limit]
        return answer(request, 200, json.dumps({"items": items}).encode(), "application/json")

    def delivery_for(request: Request, keyid: str) -> Delivery:
        d = state.deliveries.get(request.path_params["delivery_id"])
        if d is None or d.recipient_node != keyid:
            raise ProblemError(404, "not-found", "no such delivery for this node")
        return d

    @endpoint
    async def fetch(request: Request) -> Response:
        keyid, _ = await authenticate(request)
        d = delivery_for(request, keyid)
        data = d.data + b"<!-- swapped -->" if state.tamper_fetch else d.data
        return answer(request, 200, data, "application/xml", **{"Lienthong-Message-Id": d.message_id})

    @endpoint
    async def ack(request: Request) -> Response:
        keyid, body = await authenticate(request)
        d = delivery_for(request, keyid)
        doc = json.loads(body or b"{}")
        if doc.get("outcome") not in ("done", "fail"):
            raise ProblemError(400, "malformed", "outcome must be done or fail")
        if d.state == "queued":
            d.state, d.reason = doc["outcome"], doc.get("reason")
        return answer(request, 204, b"", "application/json")

    return Starlette(
        routes=[
            Route("/api/v1/exchange/envelopes", post_envelope, methods=["POST"]),
            Route("/api/v1/exchange/inbox", inbox, methods=["GET"]),
            Route("/api/v1/exchange/inbox/{delivery_id}", fetch, methods=["GET"]),
            Route("/api/v1/exchange/inbox/{delivery_id}/ack", ack, methods=["POST"]),
        ]
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(state: AxisState) -> Iterator[str]:
    """Run the fake axis with uvicorn in a thread on a free loopback port; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake axis did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
