"""What a remote caller can make an agency node's HTTP API do with hostile input: the app in process
(FastAPI's TestClient, no workers), on a network of configs written for it; nothing is sent anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from node.api import UPLOAD_OVERHEAD, create_app
from node.config import load_settings
from node.network import AgencySpec, write_network
from node.runtime import NodeRuntime
from node.samples import SENDER
from node.tokens import Role, create_token
from tests.node.exchange_network import AXES

AGENCY = AgencySpec("so-tai-chinh", AXES[0].node_id, ((SENDER.organ_id, SENDER.organ_name),))
MAX_ENVELOPE = 1024  # the smallest a node accepts: the limits are reached with little data


@dataclass
class Api:
    client: TestClient
    runtime: NodeRuntime
    tokens: dict[Role, str]

    def as_(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    directory: Path = tmp_path_factory.mktemp("api-inputs")
    network = write_network(
        directory,
        (AXES[0],),
        (AGENCY,),
        pki_base_url="http://127.0.0.1:9",  # never fetched: nothing here is verified
        timestamps=False,
        extra={AGENCY.node_id: {"max_envelope_bytes": MAX_ENVELOPE}},
    )
    runtime = NodeRuntime(load_settings(network.node(AGENCY.node_id).config))
    tokens = {
        role: create_token(runtime, f"test-{role.value}", role) for role in (Role.CLERK, Role.AUDITOR, Role.ARCHIVIST)
    }
    try:
        with TestClient(create_app(runtime, start_workers=False), raise_server_exceptions=False) as client:
            yield Api(client, runtime, tokens)
    finally:
        runtime.close()


def _chunks(total: int, size: int = 64 * 1024, head: bytes = b"") -> Iterator[bytes]:
    """A body sent without Content-Length (chunked): only counting it as it comes can stop it."""
    yield head
    sent = len(head)
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b" " * piece


# one uploaded file that never ends: spooled to disk as it comes
FILE_PART = b'--x\r\nContent-Disposition: form-data; name="files"; filename="a.pdf"\r\n\r\n'


@pytest.mark.parametrize(
    ("path", "content_type", "head"),
    [
        ("/api/v1/statuses", "application/json", b""),
        ("/api/v1/messages", "multipart/form-data; boundary=x", FILE_PART),
    ],
)
def test_a_chunked_body_over_the_limit_is_refused_not_read_whole(
    api: Api, path: str, content_type: str, head: bytes
) -> None:
    # no token: the body is read before the token is looked at, so a stranger could fill memory or disk
    limit = MAX_ENVELOPE + UPLOAD_OVERHEAD
    answer = api.client.post(path, content=_chunks(limit + 1, head=head), headers={"Content-Type": content_type})
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == "urn:lienthong:problem:too-large"


def test_a_chunked_body_under_the_limit_still_gets_through(api: Api) -> None:
    answer = api.client.post(
        "/api/v1/statuses", content=_chunks(1000), headers={"Content-Type": "application/json", **api.as_(Role.CLERK)}
    )
    assert answer.status_code == 422  # read whole and judged: blanks are no JSON object


def test_health_tells_a_stranger_nothing_about_the_node_s_files_or_database(api: Api) -> None:
    answer = api.client.get("/api/v1/health")  # no token: load balancers and monitors ask it
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    text = answer.text
    assert "sqlite" not in text and str(api.runtime.settings.data_dir) not in text
    assert "database" not in answer.json()


@pytest.mark.parametrize(
    ("path", "params", "role"),
    [
        ("/api/v1/messages", {"offset": 2**63 - 1}, Role.CLERK),
        ("/api/v1/messages", {"offset": 2**63}, Role.CLERK),
        ("/api/v1/messages", {"offset": 2**70}, Role.CLERK),
        ("/api/v1/audit/proofs/inclusion", {"index": 2**63 - 1}, Role.AUDITOR),
        ("/api/v1/audit/proofs/inclusion", {"index": 2**63}, Role.AUDITOR),
        ("/api/v1/audit/proofs/inclusion", {"index": 0, "size": 2**63}, Role.AUDITOR),
        ("/api/v1/audit/proofs/consistency", {"from": 2**63}, Role.AUDITOR),
        ("/api/v1/audit/proofs/consistency", {"from": 1, "to": 2**63}, Role.AUDITOR),
    ],
)
def test_numbers_too_large_for_the_database_are_a_client_error(
    api: Api, path: str, params: dict[str, int], role: Role
) -> None:
    answer = api.client.get(path, params=params, headers=api.as_(role))
    if answer.status_code == 200:  # the largest offset the database takes: an empty page
        assert answer.json()["items"] == []
        return
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


def test_an_archive_cursor_with_a_number_too_large_for_the_database_is_refused(api: Api) -> None:
    import base64
    import json

    from storage.archive import ArchiveQuery

    # cursors are opaque but not secret: their fingerprint is a digest of the (empty) filters
    raw = json.dumps([1, "2026-01-01", 2**70, 5, True, ArchiveQuery().fingerprint()])
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    answer = api.client.get("/api/v1/archive", params={"cursor": cursor}, headers=api.as_(Role.ARCHIVIST))
    assert answer.status_code == 400, answer.text
    assert answer.json()["type"] == "urn:lienthong:problem:bad-query"


def test_failed_logins_grow_the_audit_log_at_a_bounded_pace_and_every_one_is_counted() -> None:
    from node._private.auth_failures import AuthFailureLimiter

    now = [0.0]
    limiter = AuthFailureLimiter(per_minute=3, clock=lambda: now[0])
    assert [limiter.admit("203.0.113.9") for _ in range(10)] == [0, 0, 0, None, None, None, None, None, None, None]
    assert limiter.admit("198.51.100.7") == 0  # another client has its own allowance
    now[0] = 61.0
    assert limiter.admit("203.0.113.9") == 7  # the next one recorded says how many were not
    assert limiter.admit("203.0.113.9") == 0


def test_a_stranger_guessing_tokens_cannot_grow_the_audit_log_at_will(api: Api) -> None:
    before = api.runtime.audit.size()
    for n in range(200):
        r = api.client.get("/api/v1/messages", headers={"Authorization": f"Bearer lt_guess-{n}"})
        assert r.status_code == 401
    grown = api.runtime.audit.size() - before
    assert 1 <= grown <= api.runtime.auth_failures.per_minute


def _send_form(api: Api, pdf: bytes) -> Any:
    import json

    from node.cli.demo import message_form
    from node.samples import MINISTRY, sample_monthly_report

    message = sample_monthly_report(sender=SENDER, recipients=(MINISTRY,), code_number="api-seal")
    message = message.model_copy(update={"attachments": (message.attachments[0].model_copy(update={"data": pdf}),)})
    spec, files = message_form(message)
    return api.client.post(
        "/api/v1/messages",
        data={"message": json.dumps(spec, ensure_ascii=False)},
        files=files,
        headers=api.as_(Role.CLERK),
    )


def _queued(api: Api) -> int:
    from sqlalchemy import func, select

    from storage.exchange import EnvelopeRow

    with api.runtime.session() as s:
        return int(s.scalar(select(func.count()).select_from(EnvelopeRow)) or 0)


def test_a_file_that_is_no_pdf_is_the_clerk_s_error_naming_the_file_and_nothing_is_queued(api: Api) -> None:
    before = _queued(api)
    answer = _send_form(api, b"this is a Word document, not a PDF")
    assert answer.status_code == 422, answer.text  # was a plain-text 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert "cannot be sealed" in answer.json()["detail"] and ".pdf'" in answer.json()["detail"]
    assert _queued(api) == before


def test_a_seal_the_node_cannot_load_is_a_503_not_the_clerk_s_error(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from signing.errors import KeyLoadError

    def unloadable(*_args: object) -> None:  # fault injection: the token is unplugged, the key file unreadable
        raise KeyLoadError("seal.p12: the passphrase does not open it")

    monkeypatch.setattr(type(api.runtime), "pdf_key", unloadable)
    before = _queued(api)
    answer = _send_form(api, b"%PDF-1.7\n")
    assert answer.status_code == 503, answer.text
    problem = answer.json()
    assert problem["type"] == "urn:lienthong:problem:cannot-sign" and "seal.p12" in problem["detail"]
    assert _queued(api) == before


def test_a_timestamp_authority_that_is_down_is_a_503_not_the_clerk_s_file(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from node.samples import sample_pdf
    from signing.timestamps import HttpTimestamper

    with socket.socket() as free:  # a port nothing listens on: the TSA is down
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setitem(api.runtime.__dict__, "timestamper", HttpTimestamper(f"http://127.0.0.1:{port}/tsa", timeout=2))
    before = _queued(api)
    answer = _send_form(api, sample_pdf(size=500))
    assert answer.status_code == 503, answer.text
    assert f"127.0.0.1:{port}" in answer.json()["detail"] and _queued(api) == before


def _signed_as_axis(api: Api, method: str, url: str, body: bytes = b"") -> dict[str, str]:
    from adapters.httpsig import NodeKey, sign_request

    axis = AXES[0].node_id
    key = NodeKey.load(api.runtime.settings.config_dir.parent / axis / "node-key.pem", axis)
    return sign_request(method, url, {}, body, key, to=api.runtime.settings.node_id)


def test_one_node_cannot_hold_more_than_a_few_inbox_long_polls_open(api: Api) -> None:
    """Every long-poll holds a connection and looks at the database each second: a node that opens many
    gets MAX_LONG_POLLS waiting, and the rest answered at once (as with wait=0), not a connection each."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from node.api import MAX_LONG_POLLS

    url = "http://testserver/api/v1/exchange/inbox?limit=5&wait=3"

    def poll(_: int) -> tuple[int, float]:
        started = time.monotonic()
        r = api.client.get(url, headers=_signed_as_axis(api, "GET", url))
        return r.status_code, time.monotonic() - started

    extra = 3
    with ThreadPoolExecutor(MAX_LONG_POLLS + extra) as pool:
        answers = list(pool.map(poll, range(MAX_LONG_POLLS + extra)))
    assert {status for status, _ in answers} == {200}
    assert sum(took < 1.5 for _, took in answers) == extra, answers
    assert api.client.app.state.long_polls == {}  # type: ignore[attr-defined]


def test_failed_logins_from_many_addresses_grow_the_audit_log_at_a_bounded_pace_too() -> None:
    """One IPv6 host holds a whole /64, and a stranger may hold many addresses: the bound per address is not
    enough, so all clients together have one too; nothing goes uncounted, forgotten clients included."""
    from node._private.auth_failures import AuthFailureLimiter

    now = [0.0]
    limiter = AuthFailureLimiter(per_minute=3, total_per_minute=10, max_clients=50, clock=lambda: now[0])
    same_host = [limiter.admit(f"2001:db8:1:2::{n:x}") for n in range(10)]
    assert same_host == [0, 0, 0] + [None] * 7  # one /64 is one client
    recorded = [limiter.admit(f"2001:db8:{n:x}::1") for n in range(200)]
    assert sum(r is not None for r in recorded) == 7  # 10 a minute for everyone together
    # every unrecorded failure is still counted, by its client while it is remembered (only 50 are), else
    # apart, to be recorded with the next failure that is
    held = sum(w.suppressed for w in limiter._windows.values())
    assert held + limiter.forgotten() == 7 + 193
    assert limiter.forgotten() == 0  # taken once
    now[0] = 61.0
    assert limiter.admit("192.0.2.1") == 0  # a new minute: recorded again


def test_a_nonce_as_long_as_the_protocol_allows_is_remembered_and_its_replay_refused(database_url: str) -> None:
    """Nonces may be 128 characters (protocol §3); the nonces column holds 100, and PostgreSQL refuses a
    longer value with an error: every such request of a peer was a 500, not a checked one."""
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from node.api import _remember_nonce
    from storage.db import make_engine
    from storage.migrate import upgrade

    engine = make_engine(database_url)
    try:
        upgrade(engine)
        remember = _remember_nonce(SimpleNamespace(engine=engine))  # type: ignore[arg-type]
        until = datetime.now(UTC) + timedelta(seconds=60)
        longest, other = "N" * 128, "N" * 127
        assert remember("truc-tw", longest, until)
        assert not remember("truc-tw", longest, until)  # replayed
        assert remember("truc-tw", other, until)
        assert remember("truc-tw", "n" * 100, until)
        assert not remember("truc-tw", "n" * 100, until)
    finally:
        engine.dispose()
