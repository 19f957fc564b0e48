"""The HTTP API of a node (FastAPI): the node ↔ axis exchange, and the API for clerks and integrators.

Exchange endpoints (``/api/v1/exchange/...``) authenticate the calling node by its RFC 9421 request
signature and sign their answers; the others take an API token with a role. Every error is an RFC 9457
problem (``application/problem+json``) naming what is wrong.
"""

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import Base64Bytes, BaseModel, Field
from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node.delivery import FOLLOWED_STATUSES, Workers, answered_by, fate_failed, fate_text
from node.errors import AmbiguousDocumentError, NodeError, NotFoundError, SendError
from node.events import log_safe, record_event
from node.runtime import NodeRuntime, Peer
from node.tokens import Role, TokenError, authenticate
from schemas import VIETNAM_TIME
from signing.errors import SigningError
from storage.errors import StorageError
from storage.exchange import DeliveryRow, EnvelopeRow, NonceRow, OutboxRow, StatusRow

log = logging.getLogger("lienthong.api")
PROBLEM = "application/problem+json"
EXCHANGE = "/api/v1/exchange"
MAX_BATCH = 500  # envelopes in one POST /envelopes/batch
MAX_INLINE = 64 * 1024 * 1024  # bytes of envelopes one inbox listing may carry
# Inbox long-polls one node may hold open at a time (its inbox worker needs one, a replica one more); the
# others are answered at once, as with wait=0, so a node cannot tie up the axis's connections and threads.
MAX_LONG_POLLS = 4
MAX_SENT_QUERY = 100  # message ids in one POST /exchange/sent
MAX_SQL_INT = 2**63 - 1  # a larger number in a query makes the database driver fail (a 500, not the caller's 4xx)


class ProblemError(Exception):
    def __init__(self, status: int, slug: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail, self.extra = status, slug, detail, extra


def problem_response(status: int, slug: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": f"urn:lienthong:problem:{slug}",
        "title": _TITLES.get(slug, slug.replace("-", " ")),
        "status": status,
    }
    body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


_TITLES = {
    "unauthenticated": "Not authenticated",  # the detail says which: no or bad token, or an unknown node key
    "forbidden": "Not allowed",
    "not-found": "Not found",
    "bad-signature": "The envelope signature does not verify",
    "not-authorised": "The node may not speak for this organisation",
    "unknown-recipient": "Unknown recipient",
    "too-large": "The upload is too large",
    "malformed": "Malformed request",
    "loop": "Routing loop",
    "ambiguous-document": "Two senders used this DocumentId",
    "witness-conflict": "The witness last cosigned another size",
    "cannot-sign": "The node cannot sign now",
}


# -- node authentication (RFC 9421) ---------------------------------------------------------------------


_REMEMBER_NONCE = insert(NonceRow)


def _remember_nonce(runtime: NodeRuntime) -> Callable[[str, str, datetime], bool]:
    # Spent nonces are kept in the database (replicas share them) until well after their signatures expired;
    # the expired ones are swept once a minute, not on every request.
    swept = [datetime.min.replace(tzinfo=UTC)]

    def remember(key_id: str, nonce: str, expires_at: datetime) -> bool:
        now = datetime.now(UTC)
        try:
            # Core, not the ORM: one INSERT on every signed request, without a unit of work around it.
            with runtime.engine.begin() as conn:
                if now - swept[0] > timedelta(minutes=1):
                    conn.execute(delete(NonceRow).where(NonceRow.expires_at < now - timedelta(minutes=10)))
                    swept[0] = now
                conn.execute(
                    _REMEMBER_NONCE, {"key_id": key_id, "nonce": _stored_nonce(nonce), "expires_at": expires_at}
                )
        except IntegrityError:
            return False
        return True

    return remember


_NONCE_COLUMN = NonceRow.__table__.c.nonce.type.length or 100  # type: ignore[attr-defined]


def _stored_nonce(nonce: str) -> str:
    """The nonce as the database keeps it: the protocol allows 128 characters, the column holds 100 (PostgreSQL
    would refuse a longer one with an error, a 500 for every such request). A longer nonce is kept as its
    SHA-256, marked with "~", which no base64url nonce contains, so it cannot collide with a nonce kept as is."""
    if len(nonce) <= _NONCE_COLUMN:
        return nonce
    import base64
    import hashlib

    return "~" + base64.urlsafe_b64encode(hashlib.sha256(nonce.encode()).digest()).decode().rstrip("=")


def _check_declared_length(request: Request, limit: int) -> None:
    """Refuse a body whose declared length is over ``limit``, before any of it is read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProblemError(413, "too-large", f"the body is {int(declared):,} bytes; the limit is {limit:,}")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused once it has grown over ``limit`` (a declared length is checked before: see
    :func:`_check_declared_length`)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, "too-large", f"the body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class NodeCall:
    """An authenticated call from another node: who it is and the exact body it signed."""

    def __init__(self, peer: Peer, body: bytes, signature: Any) -> None:
        self.peer, self.body, self.signature = peer, body, signature


def node_auth(runtime: NodeRuntime) -> Callable[[Request], Awaitable[NodeCall]]:
    from adapters.errors import HttpSignatureError
    from adapters.httpsig import verify_request_body, verify_request_headers

    remember = _remember_nonce(runtime)
    limit = runtime.settings.max_envelope_bytes

    def refused(request: Request, e: HttpSignatureError) -> ProblemError:
        _auth_failed(runtime, request, path=request.url.path, reason=e.reason)
        return ProblemError(e.http_status, "unauthenticated", e.reason)

    async def dependency(request: Request) -> NodeCall:
        _check_declared_length(request, limit)
        # The signature covers the Content-Digest field, not the body: it is checked before a byte of the body
        # is read, so a stranger cannot make this node take in (and hold) bodies up to the limit.
        try:
            signed = verify_request_headers(
                request.method,
                str(request.url),
                list(request.headers.items()),
                # the signed Lienthong-To must name this node: a request signed for another is not replayable here
                receiver=runtime.settings.node_id,
                resolve_key=runtime.public_key_of,
            )
        except HttpSignatureError as e:
            raise refused(request, e) from None
        body = await read_body(request, limit)
        try:
            verified = verify_request_body(signed, body, remember_nonce=remember)
        except HttpSignatureError as e:
            raise refused(request, e) from None
        peer = runtime.peer(verified.keyid)
        assert peer is not None  # resolve_key knew it
        # From here on, answers are bound to this request's signature (and before, never: see _bound_to).
        request.state.signature = verified
        return NodeCall(peer, body, verified)

    return dependency


def _bound_to(request: Request) -> list[tuple[str, str]] | None:
    """The request headers an exchange answer is bound to: only those of a request whose signature, body and
    nonce were accepted here. Binding an answer to any request carrying a ``Signature`` field would make this
    node a signing oracle: whoever saw a node's request on the way (a proxy) could send its Signature with
    another path or body, or again, and hand the node's signed, bound refusal back as the answer to it — a
    forged 4xx that the caller would take as final and dead-letter its message for."""
    if getattr(request.state, "signature", None) is None:
        return None
    return list(request.headers.items())


T = TypeVar("T")


async def verifying(app: FastAPI, work: Callable[[], T]) -> T:
    """Run signature-verifying ``work`` on the app's small verification pool.

    Verification is CPU-bound, so more threads would not make it faster; a few long-lived threads also keep
    their revocation fetchers (and so their cached OCSP responses) instead of starting cold in new threads.
    """
    import asyncio

    pool: ThreadPoolExecutor = app.state.verification_pool
    return await asyncio.get_running_loop().run_in_executor(pool, work)


def signed_json(runtime: NodeRuntime, request: Request, payload: Any, status: int = 200) -> Response:
    return signed_bytes(runtime, request, json.dumps(payload, ensure_ascii=False).encode(), "application/json", status)


def signed_bytes(
    runtime: NodeRuntime,
    request: Request,
    body: bytes,
    media_type: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    from adapters.httpsig import sign_response

    all_headers = {"content-type": media_type, **(headers or {})}
    all_headers.update(sign_response(status, all_headers, body, runtime.node_key, request_headers=_bound_to(request)))
    return Response(body, status_code=status, headers=all_headers, media_type=media_type)


def _auth_failed(runtime: NodeRuntime, request: Request, **fields: Any) -> None:
    """Audit a failed authentication, within the per-client bound of ``runtime.auth_failures``."""
    client = request.client.host if request.client else None
    suppressed = runtime.auth_failures.admit(client)
    if suppressed is not None:
        if suppressed:
            fields["suppressed"] = suppressed  # failures from this client not recorded since the last one
        elsewhere = runtime.auth_failures.forgotten()
        if elsewhere:
            fields["suppressed_elsewhere"] = elsewhere  # those of clients no longer told apart
        record_event(runtime, "auth.failed", client=client, **fields)


# -- API tokens ------------------------------------------------------------------------------------------


def token_auth(runtime: NodeRuntime, permission: str) -> Callable[..., tuple[str, Role]]:
    def dependency(request: Request, authorization: Annotated[str | None, Header()] = None) -> tuple[str, Role]:
        try:
            return authenticate(runtime, authorization, permission)
        except TokenError as e:
            _auth_failed(runtime, request, permission=permission, reason=e.detail)
            raise ProblemError(e.status, "unauthenticated" if e.status == 401 else "forbidden", e.detail) from None

    return dependency


# -- models ----------------------------------------------------------------------------------------------


class AckBody(BaseModel):
    outcome: str = Field(pattern="^(done|fail)$")
    reason: str | None = Field(default=None, max_length=2000)


class AckItem(AckBody):
    delivery_id: str = Field(min_length=1, max_length=200)


class AckBatchBody(BaseModel):
    acks: list[AckItem] = Field(min_length=1, max_length=500)


class InboxPollBody(BaseModel):
    acks: list[AckItem] = Field(default_factory=list, max_length=500)
    limit: int = Field(default=50, ge=1, le=500)
    wait: float = Field(default=0, ge=0, le=30)
    inline: int = Field(default=0, ge=0, le=MAX_INLINE)


class BatchEnvelope(BaseModel):
    message_id: str = Field(max_length=64)
    data: Base64Bytes


class EnvelopeBatchBody(BaseModel):
    envelopes: list[BatchEnvelope] = Field(min_length=1, max_length=MAX_BATCH)


class SentQueryBody(BaseModel):
    message_ids: list[Annotated[str, Field(pattern="^[0-9a-f]{64}$")]] = Field(min_length=1, max_length=MAX_SENT_QUERY)


class WitnessBody(BaseModel):
    checkpoint: str = Field(max_length=10_000, description="the node's checkpoint, a C2SP signed note")
    proof: list[str] = Field(default_factory=list, max_length=128, description="consistency proof, base64 hashes")
    old_size: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SQL_INT,
        description="the size the proof goes from: the last one the node believes this axis cosigned (0: none)",
    )


class StatusBody(BaseModel):
    document_id: str = Field(min_length=1, max_length=200)
    organisation: str = Field(description="the organisation answering (or recalling: the sender)")
    code: int = Field(description="03, 04, 05, 06, 13, 15 or 16")
    description: str = Field(default="", max_length=2000)
    staff: str = Field(default="", max_length=200)
    department: str = Field(default="", max_length=200)
    document_sender: str | None = Field(
        default=None,
        max_length=35,
        description="the sender of the document answered; needed only when two senders used its DocumentId",
    )


def create_app(runtime: NodeRuntime, *, start_workers: bool = True) -> FastAPI:
    workers = Workers(runtime)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if start_workers:
            workers.start()
        record_event(runtime, "node.started", role=runtime.settings.role)
        try:
            yield
        finally:
            workers.stop()
            app.state.verification_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title=f"Liên thông {runtime.settings.role} node {runtime.settings.node_id}",
        version="1",
        lifespan=lifespan,
        description="Exchange of signed edXML envelopes between state agencies. See docs/protocol.md.",
    )
    app.state.runtime, app.state.workers = runtime, workers
    app.state.verification_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify")
    app.state.mail_events = {}  # node id → the event its inbox long-poll waits on
    app.state.long_polls = {}  # node id → how many of its inbox long-polls are waiting now
    _install_problem_handlers(app)
    _limit_request_bodies(app, runtime.settings.max_envelope_bytes + UPLOAD_OVERHEAD)
    auth_node = node_auth(runtime)

    # -- exchange: node ↔ axis -------------------------------------------------------------------------
    @app.post(f"{EXCHANGE}/envelopes", tags=["exchange"])
    async def post_envelope(
        request: Request,
        call: Annotated[NodeCall, Depends(auth_node)],
        message_id: Annotated[str, Header(alias="Lienthong-Message-Id")] = "",
    ) -> Response:

        from node.routing import AcceptResult, RefusedError, accept_envelope

        if runtime.settings.role != "axis":
            return await _push_to_agency(runtime, request, call, message_id)

        def accept() -> AcceptResult:
            result = accept_envelope(runtime, call.body, message_id=message_id, from_node=call.peer)
            runtime.sync_committed()  # durable before the 202 says so
            return result

        try:
            result = await verifying(app, accept)
        except RefusedError as e:
            raise ProblemError(e.status, e.slug, e.detail) from None
        _wake_inbox_waiters(app, runtime, result.recipients)
        payload = {"message_id": result.message_id, "status": result.status, "recipients": list(result.recipients)}
        return signed_json(runtime, request, payload, 202 if result.status == "accepted" else 200)

    @app.post(f"{EXCHANGE}/envelopes/batch", tags=["exchange"])
    async def post_envelope_batch(request: Request, call: Annotated[NodeCall, Depends(auth_node)]) -> Response:
        from node.routing import RefusedError, accept_envelope

        if runtime.settings.role != "axis":
            raise ProblemError(403, "forbidden", "batches of envelopes go to an axis; push one at a time")
        batch = _parse(EnvelopeBatchBody, call.body, "the batch")

        def accept_all() -> list[dict[str, Any]]:
            results: list[dict[str, Any]] = []
            for item in batch.envelopes:
                try:
                    done = accept_envelope(runtime, item.data, message_id=item.message_id, from_node=call.peer)
                except RefusedError as e:
                    problem = {
                        "type": f"urn:lienthong:problem:{e.slug}",
                        "title": _TITLES.get(e.slug, e.slug.replace("-", " ")),
                        "status": e.status,
                        "detail": e.detail,
                    }
                    results.append({"message_id": item.message_id, "status": "refused", "problem": problem})
                else:
                    results.append(
                        {"message_id": done.message_id, "status": done.status, "recipients": list(done.recipients)}
                    )
            runtime.sync_committed()  # one sync for the whole batch, before any of it is answered accepted
            return results

        results = await verifying(app, accept_all)
        _wake_inbox_waiters(app, runtime, (c for r in results if r["status"] == "accepted" for c in r["recipients"]))
        return signed_json(runtime, request, {"results": results})

    @app.get(f"{EXCHANGE}/inbox", tags=["exchange"])
    async def get_inbox(
        request: Request,
        call: Annotated[NodeCall, Depends(auth_node)],
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        wait: Annotated[float, Query(ge=0, le=30)] = 0,
        inline: Annotated[int, Query(ge=0, le=MAX_INLINE, description="bytes of envelopes to inline")] = 0,
    ) -> Response:

        items = await _list_inbox(app, runtime, call.peer.node_id, limit, wait, inline)
        return signed_json(runtime, request, {"items": items})

    @app.post(f"{EXCHANGE}/inbox", tags=["exchange"])
    async def next_in_inbox(request: Request, call: Annotated[NodeCall, Depends(auth_node)]) -> Response:
        """Acknowledge what the last listing brought, then list what waits: one round trip per batch."""
        import anyio

        body = _parse(InboxPollBody, call.body or b"{}", "the inbox request")
        known, unknown = 0, list[str]()
        if body.acks:
            known, unknown = await anyio.to_thread.run_sync(lambda: _acknowledge(runtime, call.peer.node_id, body.acks))
        items = await _list_inbox(app, runtime, call.peer.node_id, body.limit, body.wait, body.inline)
        return signed_json(runtime, request, {"acknowledged": known, "unknown": unknown, "items": items})

    @app.get(EXCHANGE + "/inbox/{delivery_id}", tags=["exchange"])
    async def get_delivery(
        request: Request, delivery_id: str, call: Annotated[NodeCall, Depends(auth_node)]
    ) -> Response:
        import anyio

        def read() -> tuple[DeliveryRow, bytes]:  # database and object store: off the event loop
            row, envelope = _delivery(runtime, delivery_id, call.peer.node_id)
            return row, runtime.objects.get(envelope.object_key)

        row, data = await anyio.to_thread.run_sync(read)
        return signed_bytes(runtime, request, data, "application/xml", headers={"Lienthong-Message-Id": row.message_id})

    @app.post(f"{EXCHANGE}/inbox/ack", tags=["exchange"])
    async def ack_deliveries(request: Request, call: Annotated[NodeCall, Depends(auth_node)]) -> Response:
        body = _parse(AckBatchBody, call.body or b"{}", "the acknowledgements")
        import anyio

        known, unknown = await anyio.to_thread.run_sync(lambda: _acknowledge(runtime, call.peer.node_id, body.acks))
        return signed_json(runtime, request, {"acknowledged": known, "unknown": unknown})

    @app.post(EXCHANGE + "/inbox/{delivery_id}/ack", tags=["exchange"])
    async def ack_delivery(
        request: Request, delivery_id: str, call: Annotated[NodeCall, Depends(auth_node)]
    ) -> Response:
        import anyio

        body = _parse(AckBody, call.body or b"{}", "the acknowledgement")
        ack = AckItem(delivery_id=delivery_id, **body.model_dump())
        _, unknown = await anyio.to_thread.run_sync(lambda: _acknowledge(runtime, call.peer.node_id, [ack]))
        if unknown:  # another node's delivery is reported as missing, not forbidden: ids are not to be probed
            raise ProblemError(404, "not-found", f"no delivery {delivery_id} for node {call.peer.node_id}")
        return signed_bytes(runtime, request, b"", "application/json", 204)

    @app.get(EXCHANGE + "/sent/{message_id}", tags=["exchange"])
    async def get_sent(request: Request, message_id: str, call: Annotated[NodeCall, Depends(auth_node)]) -> Response:
        """What became of a message the calling node handed over: here, and further up as the parent last said."""
        import anyio

        from node.routing import sent_report

        if runtime.settings.role != "axis":
            raise ProblemError(403, "forbidden", "only an axis knows what became of the messages handed to it")
        found, _ = await anyio.to_thread.run_sync(lambda: sent_report(runtime, call.peer, [message_id]))
        if not found:  # another node's message is reported as missing, not forbidden: ids are not to be probed
            raise ProblemError(404, "not-found", f"no message {message_id[:64]} from node {call.peer.node_id}")
        return signed_json(runtime, request, found[0])

    @app.post(f"{EXCHANGE}/sent", tags=["exchange"])
    async def post_sent(request: Request, call: Annotated[NodeCall, Depends(auth_node)]) -> Response:
        """``GET /sent/{message_id}`` for several messages in one request."""
        import anyio

        from node.routing import sent_report

        if runtime.settings.role != "axis":
            raise ProblemError(403, "forbidden", "only an axis knows what became of the messages handed to it")
        body = _parse(SentQueryBody, call.body or b"{}", "the question")
        found, unknown = await anyio.to_thread.run_sync(lambda: sent_report(runtime, call.peer, body.message_ids))
        return signed_json(runtime, request, {"messages": found, "unknown": unknown})

    # -- clerks and integrators -----------------------------------------------------------------------
    @app.post("/api/v1/messages", status_code=202, tags=["messages"])
    def post_message(
        _who: Annotated[tuple[str, Role], Depends(token_auth(runtime, "messages:send"))],
        message: Annotated[
            str,
            Form(
                description="the message description (JSON, the fields of a spec); each attachment's `file` is "
                "the name of one of the uploaded `files`"
            ),
        ],
        files: Annotated[list[UploadFile] | None, File()] = None,
        idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
    ) -> dict[str, Any]:
        from node._private.spec import SpecError, spec_to_message
        from node.sending import send_document

        try:
            spec = json.loads(message)
        except ValueError as e:
            raise ProblemError(400, "malformed", f"message is not JSON: {e}") from None
        if not isinstance(spec, dict):
            raise ProblemError(400, "malformed", "message must be a JSON object")
        uploads: dict[str, bytes] = {}
        for upload in files or []:
            name = Path(upload.filename or "").name
            if not name or name != upload.filename:
                raise ProblemError(400, "malformed", f"bad attachment file name {upload.filename!r}")
            if name in uploads:
                raise ProblemError(400, "malformed", f"two uploaded files are named {name!r}")
            uploads[name] = upload.file.read()
        try:
            built = spec_to_message(spec, uploads=uploads, name="message")
        except SpecError as e:
            raise ProblemError(422, "invalid-message", str(e)) from None
        if built.kind != "document":
            raise ProblemError(
                422, "invalid-message", "POST /api/v1/messages sends documents; statuses go to /api/v1/statuses"
            )
        try:
            result = send_document(runtime, built, client_key=idempotency_key)
        except SendError as e:
            raise ProblemError(422, "invalid-message", str(e)) from None
        except SigningError as e:
            raise _cannot_sign(e) from None
        runtime.sync_committed()
        return {
            "message_id": result.message_id,
            "document_id": result.document_id,
            "recipients": list(result.recipients),
            "duplicate": result.duplicate,
        }

    @app.get("/api/v1/messages", tags=["messages"])
    def list_messages(
        _who: Annotated[tuple[str, Role], Depends(token_auth(runtime, "messages:read"))],
        direction: Annotated[str | None, Query(pattern="^(in|out|transit)$")] = None,
        kind: Annotated[str | None, Query(pattern="^(document|status)$")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0,
    ) -> dict[str, Any]:
        with runtime.session() as s:
            q = select(EnvelopeRow).order_by(EnvelopeRow.id.desc()).limit(limit).offset(offset)
            if direction:
                q = q.where(EnvelopeRow.direction == direction)
            if kind:
                q = q.where(EnvelopeRow.kind == kind)
            return {"items": [envelope_json(r) for r in s.scalars(q)], "limit": limit, "offset": offset}

    @app.get("/api/v1/messages/{message_id}", tags=["messages"])
    def get_message(
        message_id: str, _who: Annotated[tuple[str, Role], Depends(token_auth(runtime, "messages:read"))]
    ) -> dict[str, Any]:
        with runtime.session() as s:
            rows = s.scalars(select(EnvelopeRow).where(EnvelopeRow.message_id == message_id)).all()
            if not rows:
                raise ProblemError(404, "not-found", f"no message {message_id} on this node")
            out = []
            for r in rows:
                item = envelope_json(r)
                if r.report_key:
                    item["report"] = json.loads(runtime.objects.get(r.report_key))
                out.append(item)
        return {"message_id": message_id, "copies": out}

    @app.get("/api/v1/messages/{message_id}/raw", tags=["messages"])
    def get_raw(
        message_id: str, _who: Annotated[tuple[str, Role], Depends(token_auth(runtime, "messages:read"))]
    ) -> Response:
        with runtime.session() as s:
            row = s.scalars(select(EnvelopeRow).where(EnvelopeRow.message_id == message_id)).first()
            if row is None:
                raise ProblemError(404, "not-found", f"no message {message_id} on this node")
            key = row.object_key
        return Response(runtime.objects.get(key), media_type="application/xml")

    @app.get("/api/v1/statuses", tags=["statuses"])
    def get_statuses(
        document_id: Annotated[str, Query(min_length=1, max_length=200)],
        _who: Annotated[tuple[str, Role], Depends(token_auth(runtime, "statuses:read"))],
        sender: Annotated[str | None, Query(max_length=35, description="only the document from this sender")] = None,
    ) -> dict[str, Any]:
        return {
            "document_id": document_id,
            "history": status_history(runtime, document_id, sender),
            "sent": sent_copies(runtime, document_id, sender),
        }

    @app.post("/api/v1/statuses", status_code=202, tags=["statuses"])
    def post_status(
        body: StatusBody,
        _who: Annotated[tuple[str, Role], Depends(token_auth(runtime, "statuses:send"))],
        idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
    ) -> dict[str, Any]:
        from node.sending import send_status
        from schemas import StaffInfo, StatusCode

        allowed_codes = {3, 4, 5, 6, 13, 15, 16}
        if body.code not in allowed_codes:
            raise ProblemError(
                422, "invalid-status", f"status {body.code:02d} cannot be sent by hand (01/02 are automatic)"
            )
        try:
            result = send_status(
                runtime,
                document_id=body.document_id,
                reporter=body.organisation,
                code=StatusCode(body.code),
                description=body.description,
                staff=StaffInfo(staff=body.staff, department=body.department),
                client_key=idempotency_key,
                document_sender=body.document_sender,
            )
        except NotFoundError as e:
            raise ProblemError(404, "not-found", str(e)) from None
        except AmbiguousDocumentError as e:
            raise ProblemError(409, "ambiguous-document", str(e)) from None
        except SendError as e:
            raise ProblemError(422, "invalid-status", str(e)) from None
        except SigningError as e:
            raise _cannot_sign(e) from None
        runtime.sync_committed()
        return {
            "message_id": result.message_id,
            "document_id": result.document_id,
            "recipients": list(result.recipients),
        }

    # -- archive ---------------------------------------------------------------------------------------
    @app.get("/api/v1/archive", tags=["archive"])
    def archive_search(
        who: Annotated[tuple[str, Role], Depends(token_auth(runtime, "archive:read"))],
        text: str | None = None,
        agency: str | None = None,
        sender: str | None = None,
        recipient: str | None = None,
        direction: str | None = None,
        kind: str | None = None,
        document_id: str | None = None,
        code: str | None = None,
        document_type: str | None = None,
        status: str | None = None,
        period: str | None = None,
        date_from: Annotated[date | None, Query(alias="from")] = None,
        date_to: Annotated[date | None, Query(alias="to")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        from node.archive import search
        from storage.archive import ArchiveQuery

        filters: dict[str, Any] = {
            "text": text,
            "agency": agency,
            "sender": sender,
            "recipient": recipient,
            "direction": direction,
            "kind": kind,
            "document_id": document_id,
            "code": code,
            "document_type": document_type,
            "status": status,
            "report_period": period,
            "date_from": date_from,
            "date_to": date_to,
        }
        try:
            query = ArchiveQuery(
                **{k: v for k, v in filters.items() if v is not None},
                limit=limit,
                cursor=cursor,
            )
            page = search(runtime, query, actor=who[0])
        except ValueError as e:
            raise ProblemError(400, "bad-query", str(e)) from None
        return {
            "items": [e.as_json() for e in page.items],
            "total": page.total,
            "total_exact": page.total_exact,
            "next_cursor": page.next_cursor,
        }

    @app.get("/api/v1/archive/{entry_id}", tags=["archive"])
    def archive_entry(
        entry_id: int, who: Annotated[tuple[str, Role], Depends(token_auth(runtime, "archive:read"))]
    ) -> dict[str, Any]:
        from storage.archive import ArchiveIndex

        try:
            entry = ArchiveIndex(runtime.engine).get(entry_id)
        except KeyError as e:
            raise ProblemError(404, "not-found", str(e)) from None
        record_event(runtime, "archive.read", actor=who[0], count=1, entry=entry_id, unusual=False)
        return entry.as_json()

    @app.get("/api/v1/archive/{entry_id}/raw", tags=["archive"])
    def archive_raw(
        entry_id: int, who: Annotated[tuple[str, Role], Depends(token_auth(runtime, "archive:read"))]
    ) -> Response:
        from node.archive import get_entry

        try:
            _entry, data = get_entry(runtime, entry_id, actor=who[0])
        except KeyError as e:
            raise ProblemError(404, "not-found", str(e)) from None
        return Response(data, media_type="application/xml")

    @app.post("/api/v1/archive/{entry_id}/verify", tags=["archive"])
    def archive_verify(
        entry_id: int,
        who: Annotated[tuple[str, Role], Depends(token_auth(runtime, "archive:read"))],
        at_original_time: bool = False,
    ) -> dict[str, Any]:
        from node.archive import reverify

        try:
            result = reverify(runtime, entry_id, actor=who[0], at_original_time=at_original_time)
        except KeyError as e:
            raise ProblemError(404, "not-found", str(e)) from None
        return {
            "entry": entry_id,
            "at": result.at.isoformat() if result.at else None,
            "indication": result.report.indication.value,
            "report": json.loads(result.report.model_dump_json()),
            "original_report": result.original,
        }

    # -- audit -----------------------------------------------------------------------------------------
    @app.get("/api/v1/audit/checkpoint", tags=["audit"])
    def latest_checkpoint(
        _who: Annotated[tuple[str, Role], Depends(token_auth(runtime, "audit:read"))],
    ) -> dict[str, Any]:
        from node.audit import checkpoint_json, cosigned_checkpoint, publish_checkpoint, witness_verifier_key

        # The latest checkpoint, and the latest one the axis cosigned with the key to check that cosignature:
        # an auditor needs both to hold the node to what its axis has seen (docs/audit-log.md).
        upstream = runtime.upstream
        return checkpoint_json(runtime.audit.latest_checkpoint() or publish_checkpoint(runtime)) | {
            "log_key": runtime.log_signer.verifier.vkey(),
            "cosigned_note": cosigned_checkpoint(runtime),
            "witness_key": witness_verifier_key(runtime, upstream.node_id) if upstream is not None else None,
        }

    @app.post("/api/v1/audit/checkpoints", tags=["audit"])
    def new_checkpoint(
        _who: Annotated[tuple[str, Role], Depends(token_auth(runtime, "audit:read"))],
    ) -> dict[str, Any]:
        from node.audit import checkpoint_json, publish_checkpoint

        return checkpoint_json(publish_checkpoint(runtime)) | {"log_key": runtime.log_signer.verifier.vkey()}

    @app.get("/api/v1/audit/proofs/inclusion", tags=["audit"])
    def inclusion_proof(
        index: Annotated[int, Query(ge=0)],
        _who: Annotated[tuple[str, Role], Depends(token_auth(runtime, "audit:read"))],
        size: Annotated[int | None, Query(ge=1)] = None,
    ) -> dict[str, Any]:
        from node.audit import inclusion

        try:
            return inclusion(runtime, index, size)
        except (StorageError, ValueError) as e:
            raise ProblemError(400, "bad-proof-request", str(e)) from None

    @app.get("/api/v1/audit/proofs/consistency", tags=["audit"])
    def consistency_proof(
        first: Annotated[int, Query(ge=1, alias="from")],
        _who: Annotated[tuple[str, Role], Depends(token_auth(runtime, "audit:read"))],
        to: Annotated[int | None, Query(ge=1)] = None,
    ) -> dict[str, Any]:
        from node.audit import consistency

        try:
            return consistency(runtime, first, to)
        except (StorageError, ValueError) as e:
            raise ProblemError(400, "bad-proof-request", str(e)) from None

    @app.get("/api/v1/audit/events", tags=["audit"])
    def audit_events(
        _who: Annotated[tuple[str, Role], Depends(token_auth(runtime, "audit:read"))],
        event_type: Annotated[list[str] | None, Query(alias="type")] = None,
        agency: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        notable: bool = False,
        outcome: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        from node.audit import query_events

        found = query_events(
            runtime,
            types=set(event_type or []) or None,
            agency=agency,
            since=since,
            until=until,
            notable_only=notable,
            outcome=outcome,
            limit=limit,
        )
        return {"events": found}

    # -- witnessing: a node's checkpoint cosigned by its axis -----------------------------------------
    @app.post(f"{EXCHANGE}/witness", tags=["exchange"])
    async def witness_checkpoint(request: Request, call: Annotated[NodeCall, Depends(auth_node)]) -> Response:
        import base64

        from storage.errors import WitnessRefusal
        from storage.witness import WitnessConflict

        try:
            body = WitnessBody.model_validate_json(call.body)
            proof = [base64.b64decode(p, validate=True) for p in body.proof]
        except ValueError as e:
            raise ProblemError(400, "malformed", f"the witness request is not valid: {e}") from None
        vkey = runtime.log_verifier_key(call.peer.node_id)
        assert vkey is not None
        try:
            line = runtime.witness.cosign(body.checkpoint, proof, vkey, old_size=body.old_size)
        except WitnessConflict as e:
            # not a fork: the node's answer to an earlier cosigning was lost; it retries from our size
            raise ProblemError(409, "witness-conflict", str(e), size=e.known_size) from None
        except WitnessRefusal as e:
            record_event(runtime, "witness.refused", node=call.peer.node_id, reason=str(e))
            raise ProblemError(409, "fork", str(e)) from None
        record_event(runtime, "witness.cosigned", node=call.peer.node_id, checkpoint=body.checkpoint.splitlines()[1])
        return signed_json(runtime, request, {"cosignature": line})

    @app.get(f"{EXCHANGE}/checkpoint", tags=["exchange"])
    async def exchange_checkpoint(
        request: Request,
        call: Annotated[NodeCall, Depends(auth_node)],
        first: Annotated[int | None, Query(ge=1, alias="from")] = None,
    ) -> Response:
        import base64

        from node.audit import publish_checkpoint

        latest = publish_checkpoint(runtime)
        proof: list[str] = []
        if first is not None and 0 < first <= latest.size:
            proof = [base64.b64encode(p).decode() for p in runtime.audit.consistency_proof(first, latest.size)]
        payload = {"checkpoint": latest.note, "proof": proof, "log_key": runtime.log_signer.verifier.vkey()}
        return signed_json(runtime, request, payload)

    @app.get("/api/v1/health", tags=["node"])
    def health() -> dict[str, Any]:
        # No token is asked for: where the database is (a file path, a host and user) is not for strangers.
        return {"status": "ok", **{k: v for k, v in runtime.describe().items() if k != "database"}}

    return app


# -- helpers ---------------------------------------------------------------------------------------------


def envelope_json(r: EnvelopeRow) -> dict[str, Any]:
    return {
        "message_id": r.message_id,
        "direction": r.direction,
        "kind": r.kind,
        "sender": r.sender,
        "recipient": r.recipient or None,
        "recipients": r.recipients,
        "document_id": r.document_id,
        "subject": r.subject,
        "code": r.code,
        "business_type": r.business_type,
        "links_to": r.links_to,
        "status_code": r.status_code,
        "size": r.size,
        "sha256": r.sha256,
        "verified": r.verified,
        "created_at": r.created_at.isoformat(),
    }


def _cannot_sign(e: SigningError) -> ProblemError:
    """The node's own key, token or timestamp authority failed: not the clerk's doing, and nothing was queued."""
    log.error("cannot sign: %s", log_safe(e))
    return ProblemError(503, "cannot-sign", f"this node cannot sign now: {e}; nothing was queued")


def sent_copies(runtime: NodeRuntime, document_id: str, sender: str | None = None) -> list[dict[str, Any]]:
    """Every envelope of this document this node sent — the document, and the statuses a clerk sent about it
    (:data:`~node.delivery.FOLLOWED_STATUSES`; ``kind``, ``status_code``) — with its delivery to the next hop
    (pending, done, dead): where a clerk learns that the axis refused it, since then no recipient will ever
    answer. ``sender`` is the document's sender (a status's recipient, or for a recall its own sender).

    For a delivered copy some recipient did not answer (01/02) in time — a status is never answered — ``recipients``
    is what the axis said became of it per recipient (``None`` until it was asked; a forward the parent axis has
    holds the parent's answer in ``further``), and ``failed`` those of the unanswered recipients it will never
    reach (refused by the recipient's node, expired at an axis, or a forward dead-lettered, at any axis on the
    way): each with ``text``, the sentence to show."""
    followed = or_(
        EnvelopeRow.kind == "document",
        and_(EnvelopeRow.kind == "status", EnvelopeRow.status_code.in_(FOLLOWED_STATUSES)),
    )
    query = (
        select(EnvelopeRow, OutboxRow)
        .join(OutboxRow, OutboxRow.envelope_id == EnvelopeRow.id)
        .where(EnvelopeRow.direction == "out", followed, EnvelopeRow.document_id == document_id)
    )
    with runtime.session() as s:
        copies = []
        for envelope, outbox in s.execute(query.order_by(EnvelopeRow.id, OutboxRow.id)).all():
            if sender is not None and _document_sender(envelope) != sender:
                continue
            fate = outbox.fate
            failed = []
            if fate:
                answered = (
                    answered_by(s, envelope.document_id, envelope.sender) if envelope.kind == "document" else set()
                )
                failed = [
                    {**entry, "text": fate_text(entry)}
                    for entry in fate
                    if fate_failed(entry) and entry.get("recipient") not in answered
                ]
            copy: dict[str, Any] = {
                "message_id": envelope.message_id,
                "sender": envelope.sender,
                "kind": envelope.kind,
                "to": outbox.destination,
                "state": outbox.state,
                "attempts": outbox.attempts,
                "queued_at": outbox.created_at.astimezone(VIETNAM_TIME).isoformat(),
                "delivered_at": outbox.done_at.astimezone(VIETNAM_TIME).isoformat() if outbox.done_at else None,
                "last_error": outbox.last_error,
                "recipients": fate,
                "checked_at": (
                    outbox.fate_checked_at.astimezone(VIETNAM_TIME).isoformat() if outbox.fate_checked_at else None
                ),
                "failed": failed,
            }
            if envelope.kind == "status":
                copy["status_code"] = envelope.status_code
            copies.append(copy)
        return copies


def _document_sender(envelope: EnvelopeRow) -> str:
    """The sender of the document an outgoing envelope is (a document) or is about (a status)."""
    if envelope.kind == "document" or envelope.status_code == "13":  # a recall comes from the document's sender
        return envelope.sender
    return envelope.recipients[0] if envelope.recipients else ""


def status_history(runtime: NodeRuntime, document_id: str, sender: str | None = None) -> list[dict[str, Any]]:
    """The statuses of ``document_id``; each names its document's sender, since two senders may share an id."""
    query = select(StatusRow).where(StatusRow.document_id == document_id)
    if sender is not None:
        query = query.where(StatusRow.document_sender == sender)
    with runtime.session() as s:
        rows = s.scalars(query.order_by(StatusRow.stated_at, StatusRow.id)).all()
        return [
            {
                "document_sender": r.document_sender,
                "reporter": r.reporter,
                "code": r.status_code,
                "description": r.description,
                "staff": r.staff,
                "stated_at": r.stated_at.astimezone(VIETNAM_TIME).isoformat(),
                "recorded_at": r.recorded_at.astimezone(VIETNAM_TIME).isoformat(),
                "direction": r.direction,
                "message_id": r.message_id,
            }
            for r in rows
        ]


def _acknowledge(runtime: NodeRuntime, node_id: str, acks: list[AckItem]) -> tuple[int, list[str]]:
    """Settle the caller's deliveries in one transaction; return how many were known and the unknown ids.

    The first acknowledgement of a delivery counts; later ones change nothing. Another node's delivery id is
    reported as unknown, exactly like an id that does not exist.
    """
    ids = [a.delivery_id for a in acks]
    unknown: list[str] = []
    with runtime.session() as s:
        rows = {
            r.delivery_id: r
            for r in s.scalars(
                select(DeliveryRow).where(DeliveryRow.delivery_id.in_(ids), DeliveryRow.node_id == node_id)
            )
        }
        now = datetime.now(UTC)
        for ack in acks:
            live = rows.get(ack.delivery_id)
            if live is None:
                unknown.append(ack.delivery_id)
                continue
            if live.state != "queued":
                continue
            # Conditional, so that of two replicas acknowledging at once only the first counts (PostgreSQL
            # re-checks the condition once the other's update is committed); the loser records nothing.
            settled = s.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == live.id, DeliveryRow.state == "queued")
                .values(state="done" if ack.outcome == "done" else "failed", outcome_reason=ack.reason, acked_at=now)
                .execution_options(synchronize_session=False)
            )
            if settled.rowcount != 1:  # type: ignore[attr-defined]
                continue
            record_event(
                runtime,
                "message.delivered" if ack.outcome == "done" else "delivery.failed",
                session=s,
                message_id=live.message_id,
                recipient=live.recipient,
                node=node_id,
                reason=ack.reason,
            )
    return len(acks) - len(unknown), unknown


def _inbox(runtime: NodeRuntime, node_id: str, limit: int, inline: int = 0) -> list[dict[str, Any]]:
    """The caller's queued deliveries, oldest first; with ``inline`` > 0, the bytes of those that fit in it."""
    import base64

    with runtime.session() as s:
        rows = s.execute(
            select(DeliveryRow, EnvelopeRow)
            .join(EnvelopeRow, EnvelopeRow.id == DeliveryRow.envelope_id)
            .where(DeliveryRow.node_id == node_id, DeliveryRow.state == "queued")
            .order_by(DeliveryRow.id)
            .limit(limit)
        ).all()
        items = [
            {
                "delivery_id": d.delivery_id,
                "message_id": d.message_id,
                "sender": d.sender,
                "recipient": d.recipient,
                "kind": d.kind,
                "size": e.size,
                "sha256": e.sha256,
                "received_at": d.created_at.isoformat(),
            }
            for d, e in rows
        ]
        stored = [(e.object_key, e.size) for _, e in rows]
    budget = inline
    for item, (key, size) in zip(items, stored, strict=True):
        if size > budget:
            break  # in order: the client fetches the rest one by one, oldest first
        item["data"] = base64.b64encode(runtime.objects.get(key)).decode("ascii")
        budget -= size
    return items


def _delivery(runtime: NodeRuntime, delivery_id: str, node_id: str) -> tuple[DeliveryRow, EnvelopeRow]:
    with runtime.session() as s:
        row = s.scalars(select(DeliveryRow).where(DeliveryRow.delivery_id == delivery_id)).first()
        # Another node's delivery is reported as missing, not forbidden: ids are not to be probed.
        if row is None or row.node_id != node_id:
            raise ProblemError(404, "not-found", f"no delivery {delivery_id} for node {node_id}")
        envelope = s.get(EnvelopeRow, row.envelope_id)
        assert envelope is not None
        return row, envelope


_Body = TypeVar("_Body", bound=BaseModel)


def _parse(model: type[_Body], body: bytes, what: str) -> _Body:
    """A JSON request body as ``model``, or 400 ``malformed`` saying what is wrong with it."""
    try:
        return model.model_validate_json(body)
    except ValueError as e:
        raise ProblemError(400, "malformed", f"{what} is not valid: {e}") from None


async def _list_inbox(
    app: FastAPI, runtime: NodeRuntime, node_id: str, limit: int, wait: float, inline: int
) -> list[dict[str, Any]]:
    """The caller's queued deliveries; when there are none, wait up to ``wait`` seconds for some.

    At most MAX_LONG_POLLS of one node's requests wait at a time; beyond them, the listing is answered at once.
    """
    polls: dict[str, int] = app.state.long_polls
    if wait <= 0 or polls.get(node_id, 0) >= MAX_LONG_POLLS:
        return await _poll_inbox(app, runtime, node_id, limit, 0, inline)
    polls[node_id] = polls.get(node_id, 0) + 1  # on the event loop: no other task runs in between
    try:
        return await _poll_inbox(app, runtime, node_id, limit, wait, inline)
    finally:
        polls[node_id] -= 1
        if not polls[node_id]:
            del polls[node_id]


async def _poll_inbox(
    app: FastAPI, runtime: NodeRuntime, node_id: str, limit: int, wait: float, inline: int
) -> list[dict[str, Any]]:
    import anyio

    deadline = time.monotonic() + wait
    events: dict[str, Any] = app.state.mail_events
    stopping: Callable[[], bool] = getattr(app.state, "stopping", lambda: False)  # set by `lienthong serve`
    while True:
        # The event exists before the look: a delivery committed right after it still wakes this wait.
        event = events.get(node_id)
        if event is None:
            event = events[node_id] = anyio.Event()
        items = await anyio.to_thread.run_sync(lambda: _inbox(runtime, node_id, limit, inline))
        remaining = deadline - time.monotonic()
        if items or remaining <= 0 or stopping():
            return items
        # At most a second: deliveries queued by another process (a replica, or the axis's own inbox worker
        # routing what its parent sent) wake nobody here, and are seen at the next look.
        with anyio.move_on_after(min(remaining, 1.0)):
            await event.wait()
        if event.is_set() and events.get(node_id) is event:
            del events[node_id]


def _wake_inbox_waiters(app: FastAPI, runtime: NodeRuntime, recipients: Iterable[str]) -> None:
    """Wake the long-polls of the nodes that receive for ``recipients`` (organisation codes), and no others:
    every waiting node would otherwise query its inbox for each envelope that arrives for anyone."""
    events: dict[str, Any] = app.state.mail_events
    for code in recipients:
        node = runtime.local_node_for(code)
        event = events.get(node.node_id) if node is not None else None
        if event is not None:
            event.set()


async def _push_to_agency(runtime: NodeRuntime, request: Request, call: NodeCall, message_id: str) -> Response:
    """An axis pushing to an agency node: receive for every organisation of ours the envelope is for."""

    from node.receiving import ReceiveOutcome, receive_envelope
    from node.routing import MESSAGE_ID

    if runtime.upstream is None or call.peer.node_id != runtime.upstream.node_id:
        raise ProblemError(403, "forbidden", "only this node's axis may push envelopes to it")
    if not MESSAGE_ID.match(message_id):
        raise ProblemError(400, "bad-message-id", "Lienthong-Message-Id must be 64 lowercase hex digits")
    recipients = _recipients_here(runtime, call.body)
    if not recipients:
        raise ProblemError(422, "unknown-recipient", "the envelope is for no organisation this node serves")

    def receive_all() -> list[ReceiveOutcome]:
        outcomes = [receive_envelope(runtime, call.body, message_id=message_id, recipient=r) for r in recipients]
        runtime.sync_committed()
        return outcomes

    outcomes = await verifying(request.app, receive_all)
    duplicate = all(o.duplicate for o in outcomes)
    payload = {"message_id": message_id, "status": "duplicate" if duplicate else "accepted", "recipients": recipients}
    return signed_json(runtime, request, payload, 200 if duplicate else 202)


def _recipients_here(runtime: NodeRuntime, data: bytes) -> list[str]:
    from node.receiving import addressees
    from schemas import EdxmlError, ParseMode, parse_message

    try:
        message = parse_message(data, mode=ParseMode.TOLERANT).message
    except EdxmlError as e:
        raise ProblemError(400, "malformed", f"not an edXML envelope: {e}") from None
    wanted = addressees(message)
    if wanted is None and message.kind == "status":
        # A recall names no addressee: it is for whichever of ours received that document from its sender.
        about = message.header.response_for
        with runtime.session() as s:
            wanted = tuple(
                s.scalars(
                    select(EnvelopeRow.recipient)
                    .where(
                        EnvelopeRow.direction == "in",
                        EnvelopeRow.kind == "document",
                        EnvelopeRow.document_id == about.document_id,
                        EnvelopeRow.sender == about.organ_id,
                    )
                    .distinct()
                ).all()
            )
    return sorted({w for w in wanted or () if w in runtime.organisations})


UPLOAD_OVERHEAD = 4 * 1024 * 1024  # a message description and multipart framing around the files


def _limit_request_bodies(app: FastAPI, limit: int) -> None:
    """Refuse a body over ``limit``: a declared one before any of it is read, a chunked one as it comes (the
    exchange API checks as it reads)."""
    app.add_middleware(_BodyLimit, limit=limit)


class _BodyLimit:
    """Plain ASGI (not ``BaseHTTPMiddleware``, which costs a task and a stream copy on every request)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # exchange requests are measured as they are read, and refused with a signed answer (node_auth)
        if scope["type"] == "http" and not scope["path"].startswith(EXCHANGE):
            declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
            size = int(declared) if declared.isdigit() else 0
            if size > self.limit:
                response = problem_response(
                    413, "too-large", f"the body is {size:,} bytes; the limit is {self.limit:,}"
                )
                await response(scope, receive, send)
                return
            # A chunked body declares no length, and FastAPI reads a body whole (or spools its files to disk)
            # before any token is looked at: it is counted as it comes instead.
            receive = _counted(receive, self.limit)
        await self.app(scope, receive, send)


def _counted(receive: Receive, limit: int) -> Receive:
    """``receive``, refusing with 413 (through the problem handlers) once the body has grown over ``limit``."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise StarletteHTTPException(413, f"the body is over the limit of {limit:,} bytes")
        return message

    return counted


def _install_problem_handlers(app: FastAPI) -> None:
    def answer(request: Request, response: JSONResponse) -> JSONResponse:
        # Exchange answers are signed, errors included: a forged 4xx must not dead-letter a message.
        if request.url.path.startswith(EXCHANGE):
            from adapters.httpsig import sign_response

            runtime: NodeRuntime = app.state.runtime
            headers = {"content-type": PROBLEM}
            response.headers.update(
                sign_response(
                    response.status_code,
                    headers,
                    bytes(response.body),
                    runtime.node_key,
                    request_headers=_bound_to(request),
                )
            )
        return response

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return answer(request, problem_response(exc.status, exc.slug, exc.detail, **exc.extra))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")} for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['problem']}" for e in errors)
        return answer(request, problem_response(422, "invalid-request", detail, errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(exc.status_code, "http-error")
        return answer(request, problem_response(exc.status_code, slug, str(exc.detail)))

    @app.exception_handler(NodeError)
    async def _node(request: Request, exc: NodeError) -> JSONResponse:
        return answer(request, problem_response(422, "refused", str(exc)))
