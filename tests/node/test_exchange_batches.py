"""Batches on the exchange API of a real axis over HTTP: many envelopes in one request, the bytes inlined in
the inbox listing, one acknowledgement for many deliveries — each envelope and delivery still judged alone.

The axis is the real FastAPI app on its own database, served by uvicorn on loopback (no workers, so nothing
but the test touches its inbox); the calling nodes are :class:`AxisClient`s with the nodes' own keys.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import select

from adapters.axis_client import Ack, AxisClient, SendReceipt
from adapters.errors import PermanentDeliveryError, ResponseSignatureError
from adapters.httpsig import NodeKey
from node.api import create_app
from node.config import load_settings
from node.network import AgencySpec, Network, write_network
from node.runtime import NodeRuntime
from node.samples import MINISTRY, SENDER
from schemas import Organization, build_message
from signing.devpki import DevPki
from signing.envelope import envelope_message_id, sign_envelope
from storage.exchange import DeliveryRow, EnvelopeRow
from tests.adapters.fake_axis import free_port
from tests.node.exchange_network import AXES, HOME_AFFAIRS, report

AXIS = AXES[0]  # the national axis, alone
AGENCIES = (
    AgencySpec("bo-tai-chinh", AXIS.node_id, ((MINISTRY.organ_id, MINISTRY.organ_name),)),
    AgencySpec("bo-noi-vu", AXIS.node_id, ((HOME_AFFAIRS.organ_id, HOME_AFFAIRS.organ_name),)),
    AgencySpec("so-tai-chinh", AXIS.node_id, ((SENDER.organ_id, SENDER.organ_name),)),
)


@dataclass
class Axis:
    network: Network
    runtime: NodeRuntime
    url: str
    pki: DevPki

    def client(self, node_id: str) -> AxisClient:
        key = NodeKey.load(self.network.directory / node_id / "node-key.pem", node_id)
        axis_id = self.runtime.settings.node_id
        return AxisClient(self.url, key, self.runtime.node_key.public_key, peer_id=axis_id, require_signed_errors=True)

    def envelope(self, number: str, *, sender: Organization = SENDER, tamper: bool = False) -> tuple[bytes, str]:
        key = self.pki.signing_key(self.pki.organ(sender.organ_id).organisation.label)
        signed = sign_envelope(build_message(report(number, sender=sender)), key)
        message_id = envelope_message_id(signed)
        if tamper:  # a changed subject after signing: the signature no longer verifies
            signed = signed.replace("Báo cáo".encode(), b"Bao cao", 1)
        return signed, message_id

    def stored(self, message_id: str) -> int:
        with self.runtime.session() as s:
            return len(s.scalars(select(EnvelopeRow.id).where(EnvelopeRow.message_id == message_id)).all())

    def deliveries(self, node_id: str) -> dict[str, DeliveryRow]:
        with self.runtime.session() as s:
            return {d.message_id: d for d in s.scalars(select(DeliveryRow).where(DeliveryRow.node_id == node_id))}


@pytest.fixture(scope="module")
def axis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Axis]:
    from signing.devpki import serve_dev_pki

    directory: Path = tmp_path_factory.mktemp("batches")
    with serve_dev_pki(directory / "pki", port=0) as responders:
        network = write_network(directory, (AXIS,), AGENCIES, pki_base_url=responders.url, timestamps=False)
        runtime = NodeRuntime(load_settings(network.node(AXIS.node_id).config))
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(runtime, start_workers=False), host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the axis did not start"
            time.sleep(0.02)
        try:
            yield Axis(network, runtime, f"http://127.0.0.1:{port}", DevPki.load(directory / "pki"))
        finally:
            server.should_exit = True
            thread.join(10)
            runtime.close()


def test_a_batch_is_judged_envelope_by_envelope_and_resending_it_changes_nothing(axis: Axis) -> None:
    first, second = axis.envelope("B1"), axis.envelope("B2")
    tampered = axis.envelope("B3", tamper=True)
    forged = axis.envelope("B4", sender=HOME_AFFAIRS)  # honestly signed by an agency the calling node does not serve
    batch = [first, tampered, second, forged]
    with axis.client("so-tai-chinh") as client:
        outcomes = client.send_envelopes(batch)
        again = client.send_envelopes(batch)

    assert [type(o) for o in outcomes] == [SendReceipt, PermanentDeliveryError, SendReceipt, PermanentDeliveryError]
    ok1, bad_sig, ok2, not_ours = outcomes
    assert isinstance(ok1, SendReceipt) and ok1.status == "accepted" and ok1.recipients == (MINISTRY.organ_id,)
    assert isinstance(ok2, SendReceipt) and ok2.message_id == second[1]
    assert isinstance(bad_sig, PermanentDeliveryError) and bad_sig.status == 422
    assert bad_sig.problem_type == "urn:lienthong:problem:bad-signature"
    assert isinstance(not_ours, PermanentDeliveryError) and not_ours.status == 403
    assert not_ours.problem_type == "urn:lienthong:problem:not-authorised"

    assert [o.status if isinstance(o, SendReceipt) else type(o) for o in again] == [
        "duplicate",
        PermanentDeliveryError,
        "duplicate",
        PermanentDeliveryError,
    ]
    assert [axis.stored(m) for _, m in batch] == [1, 0, 1, 0]


def test_the_inbox_inlines_what_fits_and_one_acknowledgement_settles_many(axis: Axis) -> None:
    sent = [axis.envelope(f"B{n}") for n in (11, 12, 13)]
    with axis.client("so-tai-chinh") as sender:
        assert all(isinstance(o, SendReceipt) for o in sender.send_envelopes(sent))
    ids = {m for _, m in sent}
    with axis.client("bo-tai-chinh") as ministry:
        listed = [i for i in ministry.inbox(500) if i.message_id in ids]
        assert len(listed) == 3 and all(i.data is None for i in listed)  # not asked to inline

        everything = [i for i in ministry.inbox(500, inline=64 * 1024 * 1024) if i.message_id in ids]
        assert all(i.data is not None for i in everything)
        for item in everything:
            assert item.data == ministry.fetch(item.delivery_id).data

        # a budget of the first queued item's size: it comes inline, the rest is left to fetch, in order
        queued = ministry.inbox(500)
        some = ministry.inbox(500, inline=queued[0].size)
        assert some[0].data is not None and all(i.data is None for i in some[1:])

        first, second, third = everything
        unknown = ministry.ack_many(
            [
                Ack(first.delivery_id, "done"),
                Ack(second.delivery_id, "fail", "chữ ký PDF không hợp lệ"),
                Ack("d-does-not-exist", "done"),
            ]
        )
        assert unknown == ["d-does-not-exist"]
        left = {i.message_id for i in ministry.inbox(500)}
        assert first.message_id not in left and second.message_id not in left and third.message_id in left
        # the first acknowledgement counts: acknowledging again changes nothing
        assert ministry.ack_many([Ack(second.delivery_id, "done")]) == []
    rows = axis.deliveries("bo-tai-chinh")
    assert rows[first.message_id].state == "done"
    assert rows[second.message_id].state == "failed"
    assert rows[second.message_id].outcome_reason == "chữ ký PDF không hợp lệ"
    assert rows[third.message_id].state == "queued"


def test_another_nodes_deliveries_cannot_be_acknowledged(axis: Axis) -> None:
    signed, message_id = axis.envelope("B21")
    with axis.client("so-tai-chinh") as sender:
        sender.send_envelopes([(signed, message_id)])
    delivery = axis.deliveries("bo-tai-chinh")[message_id]
    with axis.client("bo-noi-vu") as other:
        assert other.ack_many([Ack(delivery.delivery_id, "fail", "not mine")]) == [delivery.delivery_id]
    assert axis.deliveries("bo-tai-chinh")[message_id].state == "queued"


def test_inlined_bytes_that_do_not_match_the_listing_are_refused(axis: Axis, monkeypatch: pytest.MonkeyPatch) -> None:
    signed, message_id = axis.envelope("B31")
    with axis.client("so-tai-chinh") as sender:
        sender.send_envelopes([(signed, message_id)])
    # fault injection: the axis's store hands out other bytes than the ones it listed
    monkeypatch.setattr(axis.runtime.objects, "get", lambda key: b"<not the envelope/>")
    with axis.client("bo-tai-chinh") as ministry, pytest.raises(ResponseSignatureError, match="do not hash"):
        ministry.inbox(500, inline=64 * 1024 * 1024)


def test_an_empty_or_malformed_batch_is_refused_and_a_bad_item_alone(axis: Axis) -> None:
    import httpx

    from adapters.httpsig import sign_request

    key = NodeKey.load(axis.network.directory / "so-tai-chinh" / "node-key.pem", "so-tai-chinh")
    url = axis.url + "/api/v1/exchange/envelopes/batch"

    def post(body: bytes) -> httpx.Response:
        headers = {"content-type": "application/json"}
        headers |= sign_request("POST", url, headers, body, key, to=axis.runtime.settings.node_id)
        return httpx.post(url, content=body, headers=headers)

    for body in (b'{"envelopes": []}', b'{"envelopes": [{"message_id": "x"}]}', b"not json"):
        r = post(body)
        assert r.status_code == 400, r.text
        assert r.json()["type"] == "urn:lienthong:problem:malformed"
    r = post(b'{"envelopes": [{"message_id": "x", "data": "PGEvPg=="}]}')
    assert r.status_code == 200, r.text
    (item,) = r.json()["results"]
    assert item["status"] == "refused" and item["problem"]["type"] == "urn:lienthong:problem:bad-message-id"
    assert item["problem"]["status"] == 400


def test_one_request_acknowledges_the_last_batch_and_lists_the_next(axis: Axis) -> None:
    sent = [axis.envelope(f"B4{n}") for n in range(3)]
    with axis.client("so-tai-chinh") as sender:
        sender.send_envelopes(sent)
    ids = {m for _, m in sent}
    with axis.client("bo-tai-chinh") as ministry:
        first, unknown = ministry.next_batch(limit=500, inline=64 * 1024 * 1024)
        mine = [i for i in first if i.message_id in ids]
        assert len(mine) == 3 and unknown == [] and all(i.data is not None for i in mine)
        acks = [Ack(i.delivery_id, "done") for i in mine[:2]] + [Ack("d-not-there", "done")]
        second, unknown = ministry.next_batch(acks, limit=500)
        # the acknowledged ones are settled before the listing, so they are not listed again
        assert {i.message_id for i in second} & ids == {mine[2].message_id}
        assert unknown == ["d-not-there"]
        assert ministry.next_batch([Ack(mine[2].delivery_id, "done")], limit=500)[0] == [
            i for i in second if i.message_id not in ids
        ]
    rows = axis.deliveries("bo-tai-chinh")
    assert all(rows[m].state == "done" for m in ids)


def test_what_the_axis_answers_accepted_was_synced_to_disk_first(axis: Axis, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite commits without a sync (WAL, synchronous=NORMAL); before a 202 the log is synced, once per request,
    with the accepted envelopes already in it — so a power loss cannot take back what the axis said it holds."""
    import os
    import sqlite3

    from storage import db

    database = axis.runtime.engine.url.database
    assert database is not None
    wal_inode = os.stat(f"{database}-wal").st_ino
    seen_at_sync: list[set[str]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.fstat(fd).st_ino == wal_inode:
            with sqlite3.connect(database) as look:
                seen_at_sync.append({m for (m,) in look.execute("SELECT message_id FROM envelopes")})
        real_fsync(fd)

    monkeypatch.setattr(db.os, "fsync", fsync)
    single, batch = axis.envelope("D1"), [axis.envelope("D2"), axis.envelope("D3")]
    with axis.client("so-tai-chinh") as client:
        alone = client.send_envelope(*single)  # POST /envelopes
        together = client.send_envelopes(batch)  # POST /envelopes/batch
    assert alone.status == "accepted"
    assert all(isinstance(o, SendReceipt) and o.status == "accepted" for o in together)
    assert len(seen_at_sync) == 2  # one sync per request, not per envelope
    assert single[1] in seen_at_sync[0]
    assert {m for _, m in batch} <= seen_at_sync[1]


def test_a_node_cannot_write_lines_of_its_own_into_the_axis_log(axis: Axis, caplog: pytest.LogCaptureFixture) -> None:
    forged = "x\n2026-11-23 12:00:00,000 INFO lienthong.events: message.delivered node=bo-noi-vu"
    signed, message_id = axis.envelope("L1")
    with axis.client("so-tai-chinh") as sender:
        sender.send_envelopes([(signed, message_id)])
    delivery = axis.deliveries("bo-tai-chinh")[message_id]
    with caplog.at_level("INFO", logger="lienthong.events"), axis.client("bo-tai-chinh") as ministry:
        ministry.ack(delivery.delivery_id, "fail", forged)  # the reason is free text, logged on the axis
    lines = [r.getMessage() for r in caplog.records if r.name == "lienthong.events"]
    failed = [line for line in lines if line.startswith("delivery.failed")]
    assert len(failed) == 1 and delivery.delivery_id not in failed[0]  # only the message id and the node
    assert all("\n" not in line and "\r" not in line for line in lines)
    assert "x\\n2026-11-23" in failed[0]  # still readable, escaped
    assert axis.deliveries("bo-tai-chinh")[message_id].outcome_reason == forged  # stored as it was said


def test_log_safe_keeps_a_remote_text_on_one_line() -> None:
    from node.events import log_safe

    forged = "refused\n2026-11-23 INFO lienthong.events delivery.done\r\u2028x\x1b[31m"
    line = log_safe(forged)
    assert "\n" not in line and "\r" not in line and "\u2028" not in line and "\x1b" not in line
    assert line.startswith("refused\\n2026-11-23 INFO")
