"""docs/protocol.md shows real bytes: the worked example must be what the code signs, and must verify."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from adapters.httpsig import NodeKey, sign_request, sign_response, verify_request, verify_response
from tests.adapters.sigtools import NonceStore
from tests.adapters.test_httpsig import RFC_ED25519_PRIVATE
from tests.conftest import REPO

DOC = (REPO / "docs" / "protocol.md").read_text(encoding="utf-8")
NOW = datetime(2025, 3, 14, 2, 30, 0, tzinfo=UTC)
BODY = b'<?xml version="1.0" encoding="UTF-8"?><edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">...</edXML>'
URL = "https://truc.hanoi.gov.vn/api/v1/exchange/envelopes"


def _doc_header(name: str, after: str) -> str:
    start = DOC.index(after)
    match = re.search(rf"^{name}: (.+)$", DOC[start:], re.MULTILINE)
    assert match, name
    return match.group(1)


def test_worked_example_request_and_answer() -> None:
    sender = NodeKey.from_pem(RFC_ED25519_PRIVATE, "so-noi-vu-hn")
    axis = NodeKey.from_pem(RFC_ED25519_PRIVATE, "truc-tinh")
    assert sender.public_key_b64 in DOC
    request = {"Content-Type": "application/xml", "Lienthong-Message-Id": _doc_header("Lienthong-Message-Id", "POST /")}
    request.update(
        sign_request("POST", URL, request, BODY, sender, to="truc-tinh", now=NOW, nonce="k2Lq1mV0cYbE3nq8Rr7tXw")
    )
    for name in ("Lienthong-To", "Content-Digest", "Signature-Input", "Signature"):
        assert request[name] == _doc_header(name, "POST /api/v1/exchange/envelopes HTTP/1.1"), name
    assert BODY.decode() in DOC and f"{len(BODY)}-byte" in DOC
    verify_request(
        "POST",
        URL,
        request,
        BODY,
        receiver="truc-tinh",
        resolve_key={"so-noi-vu-hn": sender.public_key}.get,
        remember_nonce=NonceStore(),
        now=NOW,
    )

    answer_body = DOC.split("HTTP/1.1 202 Accepted", 1)[1].split("\n\n", 1)[1].split("\n", 1)[0].encode()
    answer = {"Content-Type": "application/json"}
    answer.update(sign_response(202, answer, answer_body, axis, request_headers=request, now=NOW))
    for name in ("Content-Digest", "Signature-Input", "Signature"):
        assert answer[name] == _doc_header(name, "HTTP/1.1 202 Accepted"), name
    verify_response(202, answer, answer_body, public_key=axis.public_key, request_headers=request, now=NOW)


def test_worked_example_signature_base_is_the_one_signed() -> None:
    """The signature base the doc shows (with the signed Lienthong-To) is exactly what the Signature signs."""
    import base64

    base = DOC.split("no trailing newline:\n\n```\n", 1)[1].split("\n```", 1)[0]
    assert '"lienthong-to": truc-tinh' in base
    signature = _doc_header("Signature", "POST /api/v1/exchange/envelopes HTTP/1.1").removeprefix("lienthong=:")
    sender = NodeKey.from_pem(RFC_ED25519_PRIVATE, "so-noi-vu-hn")
    sender.public_key.verify(base64.b64decode(signature.removesuffix(":")), base.encode())
