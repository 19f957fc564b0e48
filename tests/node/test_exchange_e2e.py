"""End to end: real node processes over HTTP on loopback — sends, federation, every status, recall, updates.

The network (two axes, four agency nodes) is started once for the session (tests/node/conftest.py); each test
uses its own document numbers so tests do not see each other's messages.
"""

from __future__ import annotations

import json

import pytest

from node.samples import MINISTRY, SENDER
from schemas import Business, BusinessDocType, BusinessDocumentInfo, ReplacementInfo, UpdateReceiver
from tests.node.exchange_network import HOME_AFFAIRS, PROVINCE, Exchange, report, wait_until

pytestmark = pytest.mark.slow


def codes(history: list[dict[str, object]]) -> set[object]:
    return {h["code"] for h in history}


def test_a_report_crosses_two_axes_is_verified_stored_once_and_answered_01(exchange: Exchange) -> None:
    dept, ministry = exchange.clerk("so-tai-chinh"), exchange.clerk("bo-tai-chinh")
    sent = dept.send(report("101"))
    doc = sent["document_id"]
    assert sent["recipients"] == [MINISTRY.organ_id]

    got = wait_until("the ministry receives it", lambda: ministry.received(doc))
    assert len(got) == 1
    assert got[0]["verified"] == "TOTAL_PASSED"
    assert got[0]["message_id"] == sent["message_id"]
    detail = ministry.message(sent["message_id"])["copies"][0]
    assert detail["report"]["signatures"][0]["indication"] == "TOTAL_PASSED"
    # the PDF's seal was added by the sending node and verified by the recipient
    assert any(s["id"].startswith("attachment:") for s in detail["report"]["signatures"])

    history = wait_until("01 at the sender", lambda: (h := dept.statuses(doc)) and "01" in codes(h) and h)
    assert [h["reporter"] for h in history] == [MINISTRY.organ_id]
    # beside the history, how the sending went: delivered to the provincial axis once
    copies = dept.http.get("/api/v1/statuses", params={"document_id": doc}).json()["sent"]
    assert [(c["to"], c["state"], c["message_id"]) for c in copies] == [("truc-tinh", "done", sent["message_id"])]
    # the route: both axes appended their hop; the recipient holds the bytes with the trace
    raw = ministry.http.get(f"/api/v1/messages/{sent['message_id']}/raw").content
    from schemas import parse_message

    hops = [h.organ_id for h in parse_message(raw).message.trace]
    assert hops == ["000.00.01.H41", "000.00.00.G22"]  # the provincial axis, then the national one


def test_multi_recipient_send_reaches_each_recipient_once(exchange: Exchange) -> None:
    dept = exchange.clerk("so-tai-chinh")
    sent = dept.send(report("102", to=(MINISTRY, HOME_AFFAIRS, PROVINCE)))
    doc = sent["document_id"]
    for node in ("bo-tai-chinh", "bo-noi-vu", "ubnd-tinh"):
        got = wait_until(f"{node} receives it", lambda n=node: exchange.clerk(n).received(doc))
        assert len(got) == 1, node
        assert got[0]["verified"] == "TOTAL_PASSED"
    history = wait_until("three 01s", lambda: (h := dept.statuses(doc)) and len(h) >= 3 and h)
    assert sorted(h["reporter"] for h in history) == sorted(
        [MINISTRY.organ_id, HOME_AFFAIRS.organ_id, PROVINCE.organ_id]
    )
    assert codes(history) == {"01"}


def test_every_status_travels_back_signed(exchange: Exchange) -> None:
    dept, ministry = exchange.clerk("so-tai-chinh"), exchange.clerk("bo-tai-chinh")
    doc = dept.send(report("103"))["document_id"]
    wait_until("received", lambda: ministry.received(doc))
    for code in (3, 4, 5, 6):
        r = ministry.answer(doc, MINISTRY.organ_id, code, f"bước {code}")
        assert r.status_code == 202, r.text
    history = wait_until(
        "01, 03–06 at the sender",
        lambda: (h := dept.statuses(doc)) and codes(h) >= {"01", "03", "04", "05", "06"} and h,
    )
    assert [h["code"] for h in history if h["code"] != "01"] == ["03", "04", "05", "06"]
    assert {h["description"] for h in history} >= {"bước 3", "bước 6"}
    # 01/02 are the node's own, not a clerk's
    assert ministry.answer(doc, MINISTRY.organ_id, 1).status_code == 422
    assert ministry.answer(doc, MINISTRY.organ_id, 7).status_code == 422


def test_recall_is_answered_15_or_16(exchange: Exchange) -> None:
    dept, ministry, home = exchange.clerk("so-tai-chinh"), exchange.clerk("bo-tai-chinh"), exchange.clerk("bo-noi-vu")
    doc = dept.send(report("104", to=(MINISTRY, HOME_AFFAIRS)))["document_id"]
    wait_until("received twice", lambda: ministry.received(doc) and home.received(doc))
    r = dept.answer(doc, SENDER.organ_id, 13, "Gửi nhầm số liệu")
    assert r.status_code == 202, r.text
    assert sorted(r.json()["recipients"]) == sorted([MINISTRY.organ_id, HOME_AFFAIRS.organ_id])
    for clerk in (ministry, home):
        wait_until("the recall arrives", lambda c=clerk: "13" in codes(c.statuses(doc)))
    assert ministry.answer(doc, MINISTRY.organ_id, 15, "Đồng ý").status_code == 202
    assert home.answer(doc, HOME_AFFAIRS.organ_id, 16, "Đã xử lý xong").status_code == 202
    history = wait_until(
        "15 and 16 at the sender", lambda: (h := dept.statuses(doc)) and codes(h) >= {"15", "16"} and h
    )
    answers = {h["reporter"]: h["code"] for h in history if h["code"] in ("15", "16")}
    assert answers == {MINISTRY.organ_id: "15", HOME_AFFAIRS.organ_id: "16"}
    # a node may only recall what it sent
    assert ministry.answer(doc, MINISTRY.organ_id, 13).status_code == 404


def test_update_and_replacement_link_to_the_original(exchange: Exchange) -> None:
    dept, ministry = exchange.clerk("so-tai-chinh"), exchange.clerk("bo-tai-chinh")
    original = dept.send(report("105"))["document_id"]
    wait_until("original received", lambda: ministry.received(original))

    update = report("106")
    update = update.model_copy(
        update={
            "business": Business(
                document_id=original,
                doc_type=BusinessDocType.UPDATE,
                reason="Bổ sung số liệu",
                document_info=BusinessDocumentInfo(
                    document_info_changed=True,
                    receivers=(UpdateReceiver(organ_id=MINISTRY.organ_id, receiver_type=1),),
                ),
            )
        }
    )
    replacement = report("107")
    replacement = replacement.model_copy(
        update={
            "business": Business(
                document_id=replacement.header.document_id,
                doc_type=BusinessDocType.REPLACEMENT,
                reason="Thay thế báo cáo",
                replacements=(ReplacementInfo(document_id=original, organ_ids=(MINISTRY.organ_id,)),),
            )
        }
    )
    for message, kind in ((update, 2), (replacement, 3)):
        doc = dept.send(message)["document_id"]
        got = wait_until("received", lambda d=doc: ministry.received(d))
        assert got[0]["business_type"] == kind
        assert got[0]["links_to"] == original
        assert got[0]["verified"] == "TOTAL_PASSED"


def test_same_idempotency_key_sends_once(exchange: Exchange) -> None:
    dept, ministry = exchange.clerk("so-tai-chinh"), exchange.clerk("bo-tai-chinh")
    first = dept.send(report("108"), key="retry-108")
    second = dept.send(report("108"), key="retry-108")
    assert second["duplicate"] is True
    assert second["message_id"] == first["message_id"]
    wait_until("received", lambda: ministry.received(first["document_id"]))
    wait_until("01 back", lambda: "01" in codes(dept.statuses(first["document_id"])))
    assert len(ministry.received(first["document_id"])) == 1


def test_the_axis_witnesses_each_node_and_refuses_a_rewritten_history(exchange: Exchange) -> None:
    import httpx

    from adapters.httpsig import NodeKey, sign_request
    from node.config import load_settings
    from node.runtime import NodeRuntime
    from storage.checkpoint import ED25519, Checkpoint, NoteSigner, sign_checkpoint
    from storage.exchange import CosignatureRow

    plan = exchange.network.node("so-tai-chinh")
    exchange.clerk("so-tai-chinh").send(report("109"))
    runtime = NodeRuntime(load_settings(plan.config), create=False)
    try:

        def cosigned() -> list[CosignatureRow]:
            with runtime.session() as s:
                from sqlalchemy import select

                return list(s.scalars(select(CosignatureRow).where(CosignatureRow.witness == "truc-tinh")))

        rows = wait_until("a checkpoint cosigned by the axis", cosigned, timeout=30)
        assert rows[-1].line.startswith("— lienthong-witness/truc-tinh ")
        last = max(r.checkpoint_size for r in rows)
    finally:
        runtime.close()

    # an auditor of the node gets, over the API, the cosigned checkpoint and both keys to check it offline
    from storage.checkpoint import NoteVerifier, verify_checkpoint, verify_cosignature

    published = httpx.get(plan.url + "/api/v1/audit/checkpoint", headers={"Authorization": f"Bearer {plan.token}"})
    assert published.status_code == 200, published.text
    body = published.json()
    cosigned_note = body["cosigned_note"]
    checkpoint, _ = verify_checkpoint(cosigned_note, NoteVerifier.from_vkey(body["log_key"]))
    assert checkpoint.size >= last
    assert verify_cosignature(cosigned_note, NoteVerifier.from_vkey(body["witness_key"])) > 0
    assert body["witness_key"].startswith("lienthong-witness/truc-tinh+")

    # the node's key signs a checkpoint of a different history of the same size: a fork
    key = NodeKey.load(exchange.network.directory / "so-tai-chinh" / "node-key.pem", "so-tai-chinh")
    forged = sign_checkpoint(
        Checkpoint("lienthong/so-tai-chinh", last, b"\x01" * 32),
        NoteSigner("lienthong/so-tai-chinh", ED25519, key.private_key),
    )
    url = exchange.network.node("truc-tinh").url + "/api/v1/exchange/witness"
    body = json.dumps({"checkpoint": forged, "proof": []}).encode()
    headers = {"content-type": "application/json"}
    headers |= sign_request("POST", url, headers, body, key, to="truc-tinh")
    r = httpx.post(url, content=body, headers=headers)
    assert r.status_code == 409, r.text
    assert r.json()["type"] == "urn:lienthong:problem:fork"


def test_archive_and_audit_over_the_api(exchange: Exchange) -> None:
    import base64

    import httpx

    from storage.merkle import verify_inclusion

    dept, ministry = exchange.clerk("so-tai-chinh"), exchange.clerk("bo-tai-chinh")
    doc = dept.send(report("110"))["document_id"]
    wait_until("received", lambda: ministry.received(doc))
    found = ministry.http.get("/api/v1/archive", params={"text": "tinh hinh thuc hien", "document_id": doc}).json()
    assert [i["document_id"] for i in found["items"]] == [doc]
    entry = found["items"][0]
    assert entry["direction"] == "in" and entry["verified"] == "TOTAL_PASSED" and entry["evidence_keys"]
    raw = ministry.http.get(f"/api/v1/archive/{entry['id']}/raw")
    assert raw.status_code == 200 and raw.content.startswith(b"<?xml")
    again = ministry.http.post(f"/api/v1/archive/{entry['id']}/verify", params={"at_original_time": True}).json()
    assert again["indication"] == "TOTAL_PASSED"
    assert ministry.http.get("/api/v1/archive", params={"period": "mười"}).status_code == 400

    # the axis's auditor: a failed authentication stands out, and any event can be proven
    axis = exchange.network.node("truc-tinh")
    httpx.get(axis.url + "/api/v1/exchange/inbox")  # unsigned
    auditor = {"Authorization": f"Bearer {axis.token}"}
    events = httpx.get(axis.url + "/api/v1/audit/events", params={"notable": True}, headers=auditor).json()["events"]
    failed = next(e for e in events if e["event"]["type"] == "auth.failed")
    assert failed["notable"] is True
    proof = httpx.get(
        axis.url + "/api/v1/audit/proofs/inclusion", params={"index": failed["index"]}, headers=auditor
    ).json()
    verify_inclusion(
        base64.b64decode(proof["leaf_hash"]),
        proof["index"],
        proof["size"],
        [base64.b64decode(h) for h in proof["proof"]],
        base64.b64decode(proof["root_hash"]),
    )
    checkpoint = httpx.post(axis.url + "/api/v1/audit/checkpoints", headers=auditor).json()
    assert checkpoint["note"].startswith("lienthong/truc-tinh\n")
    consistency = httpx.get(
        axis.url + "/api/v1/audit/proofs/consistency", params={"from": 1, "to": checkpoint["size"]}, headers=auditor
    )
    assert consistency.status_code == 200, consistency.text


def test_an_axis_may_push_documents_and_recalls_to_the_agency_that_received_them(exchange: Exchange) -> None:
    """Push (protocol §8) beside pull: the national axis hands envelopes straight to the ministry's node, which
    receives them for the organisation they are for (a recall: for whoever of its own got the document), once."""
    from adapters import AxisClient, PermanentDeliveryError
    from node.config import load_settings
    from node.runtime import NodeRuntime

    dept, ministry = exchange.clerk("so-tai-chinh"), exchange.clerk("bo-tai-chinh")
    axis = NodeRuntime(load_settings(exchange.network.node("truc-tw").config), create=False)
    stranger = NodeRuntime(load_settings(exchange.network.node("bo-noi-vu").config), create=False)
    url = exchange.network.node("bo-tai-chinh").url
    try:
        sent = dept.send(report("112"))
        doc, document_message = sent["document_id"], sent["message_id"]
        wait_until("received by pull", lambda: ministry.received(doc))
        recall = dept.answer(doc, SENDER.organ_id, 13, "Gửi nhầm")
        assert recall.status_code == 202, recall.text
        recall_id = recall.json()["message_id"]
        recall_bytes = dept.http.get(f"/api/v1/messages/{recall_id}/raw").content

        ministry_key = axis.peer("bo-tai-chinh").public_key
        with AxisClient(url, axis.node_key, ministry_key, peer_id="bo-tai-chinh") as push:
            again = push.send_envelope(
                dept.http.get(f"/api/v1/messages/{document_message}/raw").content, document_message
            )
            assert again.status == "duplicate" and again.recipients == (MINISTRY.organ_id,)
            pushed = push.send_envelope(recall_bytes, recall_id)
            # the recall's ResponseFor names the department; it is for the ministry, which received the document
            assert pushed.recipients == (MINISTRY.organ_id,)
        wait_until("the recall in the ministry's history", lambda: "13" in codes(ministry.statuses(doc)))
        recalls = [h for h in ministry.statuses(doc) if h["code"] == "13"]
        assert len(recalls) == 1, "pushed and pulled, stored once"

        with AxisClient(url, stranger.node_key, ministry_key, peer_id="bo-tai-chinh") as intruder:
            with pytest.raises(PermanentDeliveryError) as refused:
                intruder.send_envelope(recall_bytes, recall_id)
            assert refused.value.status == 401  # the ministry's node knows one peer: its axis
    finally:
        axis.close()
        stranger.close()
