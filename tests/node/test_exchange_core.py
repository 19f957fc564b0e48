"""The exchange's decisions, in process: sending, the axis's checks and routing, receiving, answers.

The same network as the end-to-end tests (two axes, four agencies, one dev PKI) but every node is a
:class:`NodeRuntime` in this process, so each rule is exercised directly and quickly; the HTTP layer,
the workers and real processes are covered by test_exchange_e2e.py and test_exchange_faults.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from node.config import load_settings
from node.network import Network, write_network
from node.receiving import receive_envelope
from node.routing import RefusedError, accept_envelope
from node.runtime import NodeRuntime
from node.samples import MINISTRY, SENDER
from node.sending import send_document, send_status
from schemas import DocumentMessage, StatusCode, TraceHeader, append_trace_header, build_message, parse_message
from signing.envelope import envelope_message_id
from storage.exchange import DeliveryRow, EnvelopeRow, OutboxRow, StatusRow
from tests.node.exchange_network import AGENCIES, AXES, HOME_AFFAIRS, PROVINCE, report


@dataclass
class Nodes:
    network: Network
    runtimes: dict[str, NodeRuntime]

    def __getitem__(self, node_id: str) -> NodeRuntime:
        return self.runtimes[node_id]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def nodes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    """Every node with its own database: SQLite files (the embedded default), then PostgreSQL databases."""
    from signing.devpki import serve_dev_pki

    directory: Path = tmp_path_factory.mktemp("core")
    extra: dict[str, dict[str, object]] = {}
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres")
        extra = {n.node_id: {"database_url": server.new_database()} for n in (*AXES, *AGENCIES)}
    with serve_dev_pki(directory / "pki", port=0) as responders:
        network = write_network(directory, AXES, AGENCIES, pki_base_url=responders.url, timestamps=False, extra=extra)
        runtimes = {n: NodeRuntime(load_settings(p.config)) for n, p in network.nodes.items()}
        try:
            yield Nodes(network, runtimes)
        finally:
            for runtime in runtimes.values():
                runtime.close()


def stored(runtime: NodeRuntime, envelope_id: int) -> bytes:
    with runtime.session() as s:
        row = s.get(EnvelopeRow, envelope_id)
        assert row is not None
        return runtime.objects.get(row.object_key)


def transit_bytes(runtime: NodeRuntime, message_id: str) -> bytes:
    with runtime.session() as s:
        row = s.scalars(
            select(EnvelopeRow).where(EnvelopeRow.direction == "transit", EnvelopeRow.message_id == message_id)
        ).one()
        return runtime.objects.get(row.object_key)


def count(runtime: NodeRuntime, table: type, **where: object) -> int:
    with runtime.session() as s:
        q = select(func.count()).select_from(table)
        for column, value in where.items():
            q = q.where(getattr(table, column) == value)
        return int(s.scalar(q) or 0)


def relay(nodes: Nodes, message_id: str, data: bytes) -> bytes:
    """Through the provincial axis and the national one, as the outbox workers would carry it."""
    low, top = nodes["truc-tinh"], nodes["truc-tw"]
    accept_envelope(low, data, message_id=message_id, from_node=low.peer("so-tai-chinh"))  # type: ignore[arg-type]
    routed = transit_bytes(low, message_id)
    accept_envelope(top, routed, message_id=message_id, from_node=top.peer("truc-tinh"))  # type: ignore[arg-type]
    return transit_bytes(top, message_id)


def test_send_queues_a_signed_envelope_whose_id_is_its_signature(nodes: Nodes) -> None:
    dept = nodes["so-tai-chinh"]
    result = send_document(dept, report("201"))
    data = stored(dept, result.envelope_id)
    assert envelope_message_id(data) == result.message_id
    assert count(dept, OutboxRow, envelope_id=result.envelope_id, destination="truc-tinh", state="pending") == 1
    # the PDF carries the organisation's seal now
    message = parse_message(data).message
    assert message.kind == "document"
    assert b"/ByteRange" in message.attachments[0].data


def test_the_route_grows_and_the_signature_still_verifies_at_the_end(nodes: Nodes) -> None:
    dept, ministry = nodes["so-tai-chinh"], nodes["bo-tai-chinh"]
    result = send_document(dept, report("202"))
    final = relay(nodes, result.message_id, stored(dept, result.envelope_id))
    hops = [h.organ_id for h in parse_message(final).message.trace]
    assert hops[-2:] == ["000.00.01.H41", "000.00.00.G22"]
    outcome = receive_envelope(ministry, final, message_id=result.message_id, recipient=MINISTRY.organ_id)
    assert outcome.indication == "TOTAL_PASSED"
    assert outcome.answered == "01"
    again = receive_envelope(ministry, final, message_id=result.message_id, recipient=MINISTRY.organ_id)
    assert again.duplicate and again.envelope_id == outcome.envelope_id
    assert count(ministry, EnvelopeRow, message_id=result.message_id, direction="in") == 1
    # the event was committed with the row it describes: exactly one, however often it was delivered
    received = [
        e.event()
        for e in ministry.audit.entries(0, ministry.audit.size())
        if e.event()["type"] == "message.received" and e.event()["message_id"] == result.message_id
    ]
    assert len(received) == 1 and received[0]["indication"] == "TOTAL_PASSED"


def test_axis_refuses_what_it_must_and_stores_nothing(nodes: Nodes) -> None:
    dept, low = nodes["so-tai-chinh"], nodes["truc-tinh"]
    result = send_document(dept, report("203"))
    data = stored(dept, result.envelope_id)
    before = count(low, EnvelopeRow)

    def refused(payload: bytes, message_id: str, node: str) -> RefusedError:
        with pytest.raises(RefusedError) as info:
            accept_envelope(low, payload, message_id=message_id, from_node=low.peer(node))  # type: ignore[arg-type]
        return info.value

    # From forged: the provincial People's Committee's node sends the department's envelope
    assert refused(data, result.message_id, "ubnd-tinh").status == 403
    # tampered: the subject changed after signing
    tampered = data.replace("Báo cáo tình hình".encode(), "Báo cáo sửa đổi".encode(), 1)
    assert tampered != data
    assert refused(tampered, result.message_id, "so-tai-chinh").status == 422
    # a message id that is not the signature's
    assert refused(data, "0" * 64, "so-tai-chinh").status == 400
    assert refused(data, "not-hex", "so-tai-chinh").status == 400
    # not an envelope at all
    assert refused(b"<edXML/>", "a" * 64, "so-tai-chinh").status == 400
    assert count(low, EnvelopeRow) == before


def test_unknown_recipient_is_refused_at_the_top(nodes: Nodes) -> None:
    from schemas import Organization

    dept, top = nodes["so-tai-chinh"], nodes["truc-tw"]
    nowhere = Organization(organ_id="000.00.00.G99", organ_name="Không tồn tại")
    result = send_document(dept, report("204", to=(nowhere,)))
    low = nodes["truc-tinh"]
    data = stored(dept, result.envelope_id)
    # the provincial axis does not know it: up it goes
    accept_envelope(low, data, message_id=result.message_id, from_node=low.peer("so-tai-chinh"))  # type: ignore[arg-type]
    with pytest.raises(RefusedError) as info:
        accept_envelope(
            top, transit_bytes(low, result.message_id), message_id=result.message_id, from_node=top.peer("truc-tinh")
        )  # type: ignore[arg-type]
    assert info.value.status == 422
    assert "000.00.00.G99" in info.value.detail


def test_a_route_through_this_axis_already_is_a_loop(nodes: Nodes) -> None:
    dept, top = nodes["so-tai-chinh"], nodes["truc-tw"]
    result = send_document(dept, report("205"))
    data = stored(dept, result.envelope_id)
    from datetime import datetime

    from schemas import VIETNAM_TIME

    looped = append_trace_header(data, TraceHeader(organ_id="000.00.00.G22", timestamp=datetime.now(VIETNAM_TIME)))
    with pytest.raises(RefusedError) as info:
        accept_envelope(top, looped, message_id=result.message_id, from_node=top.peer("truc-tinh"))  # type: ignore[arg-type]
    assert info.value.status == 508


def test_fan_out_one_delivery_per_recipient_local_and_upstream(nodes: Nodes) -> None:
    dept, low, top = nodes["so-tai-chinh"], nodes["truc-tinh"], nodes["truc-tw"]
    result = send_document(dept, report("206", to=(MINISTRY, HOME_AFFAIRS, PROVINCE)))
    accept_envelope(
        low, stored(dept, result.envelope_id), message_id=result.message_id, from_node=low.peer("so-tai-chinh")
    )  # type: ignore[arg-type]
    assert count(low, DeliveryRow, message_id=result.message_id, recipient=PROVINCE.organ_id, node_id="ubnd-tinh") == 1
    with low.session() as s:
        forwarded = s.scalars(
            select(OutboxRow)
            .join(EnvelopeRow, EnvelopeRow.id == OutboxRow.envelope_id)
            .where(EnvelopeRow.message_id == result.message_id)
        ).all()
    assert [o.destination for o in forwarded] == ["truc-tw"]  # once, for both ministries
    accept_envelope(
        top, transit_bytes(low, result.message_id), message_id=result.message_id, from_node=top.peer("truc-tinh")
    )  # type: ignore[arg-type]
    assert count(top, DeliveryRow, message_id=result.message_id) == 2


def test_a_failed_pdf_signature_is_answered_02_with_the_reason(nodes: Nodes) -> None:
    from signing.devpki import DevPki
    from signing.pdf import PdfSigningKey, PdfSignOptions, SignatureRole, sign_pdf

    dept, ministry = nodes["so-tai-chinh"], nodes["bo-tai-chinh"]
    pki = DevPki.load(nodes.network.directory / "pki")
    message = report("207")
    untrusted = PdfSigningKey(pki.signing_key(pki.untrusted_signer.label))
    pdf = sign_pdf(message.attachments[0].data, untrusted, PdfSignOptions(role=SignatureRole.SIGNER))
    message = message.model_copy(update={"attachments": (message.attachments[0].model_copy(update={"data": pdf}),)})
    result = send_document(dept, message)
    final = relay(nodes, result.message_id, stored(dept, result.envelope_id))
    outcome = receive_envelope(ministry, final, message_id=result.message_id, recipient=MINISTRY.organ_id)
    assert outcome.answered == "02"
    assert outcome.indication != "TOTAL_PASSED"
    with ministry.session() as s:
        answer = s.scalars(select(StatusRow).where(StatusRow.document_id == result.document_id)).one()
    assert answer.status_code == "02"
    assert answer.description  # the reason travels with the refusal


def test_a_document_whose_pdf_carries_no_signature_is_answered_02_not_passed(nodes: Nodes) -> None:
    """Sent with --no-seal and a PDF nobody signed: the envelope's signature is the sender's, but the document's
    legal signature belongs on the file (NĐ 30/2020), so the recipient cannot call it issued, and says why."""
    dept, ministry = nodes["so-tai-chinh"], nodes["bo-tai-chinh"]
    message = report("221")
    assert b"/Sig" not in message.attachments[0].data  # the sample PDF as a word processor writes it
    result = send_document(dept, message, seal_pdfs=False)
    final = relay(nodes, result.message_id, stored(dept, result.envelope_id))
    outcome = receive_envelope(ministry, final, message_id=result.message_id, recipient=MINISTRY.organ_id)
    assert outcome.answered == "02" and outcome.indication == "INDETERMINATE"
    assert any("carries no signature" in r for r in outcome.reasons), outcome.reasons


def test_a_hostile_pdf_is_answered_02_not_an_exception(nodes: Nodes) -> None:
    # A sender's PDF that made pyHanko raise (here AttributeError: the signature value is an array) made
    # receive_envelope raise: the delivery was retried forever and never answered.
    dept, ministry = nodes["so-tai-chinh"], nodes["bo-tai-chinh"]
    message = report("220")
    body = [
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [3 0 R] >> >>",
        b"<< /Type /Pages /Kids [] /Count 0 >>",
        b"<< /FT /Sig /T (S) /V 4 0 R >>",
        b"[1 2 3]",
    ]
    pdf = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, obj in enumerate(body, start=1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
    xref = len(pdf)
    pdf += b"xref\n0 5\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    pdf += b"trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    attachment = message.attachments[0].model_copy(update={"data": bytes(pdf)})
    message = message.model_copy(update={"attachments": (attachment,)})
    result = send_document(dept, message, seal_pdfs=False)
    final = relay(nodes, result.message_id, stored(dept, result.envelope_id))
    outcome = receive_envelope(ministry, final, message_id=result.message_id, recipient=MINISTRY.organ_id)
    assert outcome.answered == "02"
    assert any("not a readable PDF" in r for r in outcome.reasons), outcome.reasons


def test_statuses_are_recorded_on_both_sides_and_recall_follows_the_route(nodes: Nodes) -> None:
    dept, ministry = nodes["so-tai-chinh"], nodes["bo-tai-chinh"]
    low, top = nodes["truc-tinh"], nodes["truc-tw"]
    result = send_document(dept, report("208"))
    final = relay(nodes, result.message_id, stored(dept, result.envelope_id))
    receive_envelope(ministry, final, message_id=result.message_id, recipient=MINISTRY.organ_id)

    done = send_status(ministry, document_id=result.document_id, reporter=MINISTRY.organ_id, code=StatusCode.DONE)
    assert done.recipients == (SENDER.organ_id,)
    # the status goes up the ministry's axis and down the provincial one, to the department
    status_bytes = stored(ministry, done.envelope_id)
    accept_envelope(top, status_bytes, message_id=done.message_id, from_node=top.peer("bo-tai-chinh"))  # type: ignore[arg-type]
    assert count(top, DeliveryRow, message_id=done.message_id, node_id="truc-tinh") == 1
    accept_envelope(low, transit_bytes(top, done.message_id), message_id=done.message_id, from_node=low.upstream)  # type: ignore[arg-type]
    assert count(low, DeliveryRow, message_id=done.message_id, node_id="so-tai-chinh") == 1
    outcome = receive_envelope(
        dept, transit_bytes(low, done.message_id), message_id=done.message_id, recipient=SENDER.organ_id
    )
    assert outcome.kind == "status" and outcome.answered is None  # statuses are not answered
    assert count(dept, StatusRow, document_id=result.document_id, status_code="06", direction="in") == 1

    recall = send_status(
        dept, document_id=result.document_id, reporter=SENDER.organ_id, code=StatusCode.RECALL_REQUESTED
    )
    assert recall.recipients == (MINISTRY.organ_id,)
    accept_envelope(
        low, stored(dept, recall.envelope_id), message_id=recall.message_id, from_node=low.peer("so-tai-chinh")
    )  # type: ignore[arg-type]
    accept_envelope(
        top, transit_bytes(low, recall.message_id), message_id=recall.message_id, from_node=top.peer("truc-tinh")
    )  # type: ignore[arg-type]
    assert (
        count(top, DeliveryRow, message_id=recall.message_id, node_id="bo-tai-chinh", recipient=MINISTRY.organ_id) == 1
    )


def test_a_status_about_a_document_never_received_is_refused(nodes: Nodes) -> None:
    from node.errors import NotFoundError

    with pytest.raises(NotFoundError, match="has received no document"):
        send_status(
            nodes["bo-tai-chinh"],
            document_id="000.01.41.H41,2026/11/16,999/BC-STC",
            reporter=MINISTRY.organ_id,
            code=StatusCode.REGISTERED,
        )


def test_message_ids_are_64_hex(nodes: Nodes) -> None:
    result = send_document(nodes["so-tai-chinh"], report("209"))
    assert re.fullmatch(r"[0-9a-f]{64}", result.message_id)
    # an unsigned build has no id
    from signing.errors import SignError

    with pytest.raises(SignError):
        envelope_message_id(build_message(report("210")))


def test_backoff_grows_with_jitter_and_stays_under_the_maximum() -> None:
    import random

    from node.delivery import backoff_seconds

    rng = random.Random(7)
    waits = [backoff_seconds(n, 1.0, 60.0, rng) for n in range(1, 12)]
    assert 0.5 <= waits[0] <= 1.0
    assert 4.0 <= waits[3] <= 8.0
    assert all(w <= 60.0 for w in waits)
    assert waits[-1] >= 30.0
    assert len({round(backoff_seconds(3, 1.0, 60.0), 6) for _ in range(20)}) > 1  # jitter


def test_unreachable_axis_means_retry_then_dead_letter_with_an_alert(
    nodes: Nodes, caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from node.delivery import claim_due, deliver_many

    dept = nodes["so-tai-chinh"]  # its axis is not running in this module: connections are refused
    result = send_document(dept, report("211"))
    with dept.session() as s:
        row = s.scalars(select(OutboxRow).where(OutboxRow.envelope_id == result.envelope_id)).one()
        row_id = row.id
    assert row_id in claim_due(dept, 500)
    assert row_id not in claim_due(dept, 500), "a leased row is not handed out twice"
    clients: dict[str, object] = {}
    assert deliver_many(dept, [row_id], clients)[row_id] == "retry"
    with dept.session() as s:
        row = s.get(OutboxRow, row_id)
        assert row is not None and row.attempts == 1 and row.state == "pending"
        assert row.next_attempt_at > datetime.now(UTC) and row.last_error
        # older than the maximum age: the next failure is final
        s.execute(
            update(OutboxRow).where(OutboxRow.id == row_id).values(created_at=datetime.now(UTC) - timedelta(days=3))
        )
    with caplog.at_level("ERROR"):
        assert deliver_many(dept, [row_id], clients)[row_id] == "dead"
    assert "ALERT" in caplog.text and result.message_id in caplog.text
    with dept.session() as s:
        row = s.get(OutboxRow, row_id)
        assert row is not None and row.state == "dead"
    types = [e.event()["type"] for e in dept.audit.entries(0, dept.audit.size())]
    assert "delivery.dead" in types


def test_a_failed_transaction_leaves_no_event_and_no_archive_entry(nodes: Nodes) -> None:
    """The envelope row, its audit event and its archive entry are one transaction: all or nothing."""
    from storage.archive import ArchiveIndex, ArchiveQuery

    dept = nodes["so-tai-chinh"]
    size = dept.audit.size()
    before = ArchiveIndex(dept.engine).count(ArchiveQuery(direction="out"))
    message = report("212")
    send_document(dept, message, client_key="atomic-212")
    assert dept.audit.size() == size + 1
    assert ArchiveIndex(dept.engine).count(ArchiveQuery(direction="out")) == before + 1
    # the same client key again, forced past the idempotency check: the unique constraint fails the commit
    from sqlalchemy.exc import IntegrityError

    from node.sending import queue_signed, sign_message

    with pytest.raises(IntegrityError):
        queue_signed(dept, sign_message(dept, SENDER.organ_id, message), message, client_key="atomic-212")
    assert dept.audit.size() == size + 1, "no event for what was rolled back"
    assert ArchiveIndex(dept.engine).count(ArchiveQuery(direction="out")) == before + 1


def test_acknowledgements_leave_only_after_a_sync_of_what_they_acknowledge(
    nodes: Nodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``done`` tells the axis it may forget a delivery: the commits behind it are synced first, once per batch."""
    from adapters.axis_client import Ack
    from node.delivery import inbox_step

    ministry = nodes["bo-tai-chinh"]
    assert ministry.upstream is not None
    order: list[str] = []

    class Axis:  # records what leaves, and when (fault injection: no network)
        def next_batch(
            self, acks: list[Ack], limit: int, *, wait: float, inline: int
        ) -> tuple[list[object], list[str]]:
            order.append(f"next_batch with {len(acks)} acks")
            return [], []

    monkeypatch.setattr(ministry, "sync_committed", lambda: order.append("sync"))
    clients: dict[str, object] = {ministry.upstream.node_id: Axis()}
    inbox_step(ministry, clients, [Ack("d1", "done", None), Ack("d2", "done", None)])  # type: ignore[arg-type]
    inbox_step(ministry, clients, [])  # type: ignore[arg-type]
    assert order == ["sync", "next_batch with 2 acks", "next_batch with 0 acks"]


def test_an_envelope_delivered_under_another_messages_id_is_refused_not_dropped_as_a_duplicate(nodes: Nodes) -> None:
    """The recipient checks the axis's word: the message id is the envelope's own (its signature value's digest)."""
    dept, ministry = nodes["so-tai-chinh"], nodes["bo-tai-chinh"]
    first = send_document(dept, report("231"))
    second = send_document(dept, report("232"))
    first_bytes = relay(nodes, first.message_id, stored(dept, first.envelope_id))
    second_bytes = relay(nodes, second.message_id, stored(dept, second.envelope_id))
    assert receive_envelope(ministry, first_bytes, message_id=first.message_id, recipient=MINISTRY.organ_id).accepted

    # a new envelope named as the one already received: not "duplicate", refused
    posing = receive_envelope(ministry, second_bytes, message_id=first.message_id, recipient=MINISTRY.organ_id)
    assert not posing.accepted and not posing.duplicate
    assert second.message_id in posing.reasons[0]
    # a new envelope under an id nobody has seen: refused too, nothing stored
    unseen = "0" * 64
    misnamed = receive_envelope(ministry, second_bytes, message_id=unseen, recipient=MINISTRY.organ_id)
    assert not misnamed.accepted
    assert count(ministry, EnvelopeRow, message_id=unseen) == 0
    # under its own id it is received, once
    honest = receive_envelope(ministry, second_bytes, message_id=second.message_id, recipient=MINISTRY.organ_id)
    assert honest.accepted and not honest.duplicate
    assert count(ministry, EnvelopeRow, message_id=second.message_id, direction="in") == 1


def events_of(runtime: NodeRuntime, event_type: str, message_id: str) -> list[dict[str, object]]:
    entries = (e.event() for e in runtime.audit.entries(0, runtime.audit.size()))
    return [e for e in entries if e["type"] == event_type and e.get("message_id") == message_id]


def signed_status(runtime: NodeRuntime, reporter: str, document_id: str, code: StatusCode) -> tuple[str, bytes]:
    """A status ``reporter`` signs about ``document_id`` of the department, whether or not it ever received it:
    what a misbehaving node could send (``send_status`` would refuse to)."""
    from node.sending import sign_message, status_message

    message = status_message(runtime, reporter, SENDER.organ_id, "", document_id, code, "không liên quan")
    data = sign_message(runtime, reporter, message)
    return envelope_message_id(data), data


def test_an_envelope_handed_to_an_organisation_it_is_not_addressed_to_is_refused_unanswered(nodes: Nodes) -> None:
    """The axis names the recipient; the signed To list must name it too, or the node is no party to it."""
    dept, ministry, province = nodes["so-tai-chinh"], nodes["bo-tai-chinh"], nodes["ubnd-tinh"]
    result = send_document(dept, report("241"))  # to the ministry only
    final = relay(nodes, result.message_id, stored(dept, result.envelope_id))
    outbox_before = count(province, OutboxRow)

    outcome = receive_envelope(province, final, message_id=result.message_id, recipient=PROVINCE.organ_id)
    assert not outcome.accepted and outcome.answered is None
    assert PROVINCE.organ_id in outcome.reasons[0] and MINISTRY.organ_id in outcome.reasons[0]
    assert count(province, EnvelopeRow, message_id=result.message_id) == 0
    assert count(province, OutboxRow) == outbox_before, "no 01 or 02 is sent for someone else's document"
    (failed,) = events_of(province, "verification.failed", result.message_id)
    assert failed["recipient"] == PROVINCE.organ_id and failed["addressees"] == [MINISTRY.organ_id]
    # delivered again, it is refused again, not taken for a duplicate
    assert not receive_envelope(province, final, message_id=result.message_id, recipient=PROVINCE.organ_id).accepted

    # a status is addressed to the organisation whose document it answers: the department, not the province
    assert receive_envelope(ministry, final, message_id=result.message_id, recipient=MINISTRY.organ_id).accepted
    done = send_status(ministry, document_id=result.document_id, reporter=MINISTRY.organ_id, code=StatusCode.DONE)
    status_bytes = stored(ministry, done.envelope_id)
    misrouted = receive_envelope(province, status_bytes, message_id=done.message_id, recipient=PROVINCE.organ_id)
    assert not misrouted.accepted
    assert count(province, EnvelopeRow, message_id=done.message_id) == 0
    assert count(province, StatusRow, document_id=result.document_id) == 0
    # and to the department it is received as before
    assert receive_envelope(dept, status_bytes, message_id=done.message_id, recipient=SENDER.organ_id).accepted
    assert count(dept, StatusRow, message_id=done.message_id) == 1


def test_a_status_from_an_organisation_that_is_no_party_is_kept_as_evidence_but_not_in_the_history(
    nodes: Nodes,
) -> None:
    """Only the document's recipients report on it to its sender, and only its sender recalls it."""
    from storage.archive import ArchiveIndex, ArchiveQuery

    dept, ministry, home = nodes["so-tai-chinh"], nodes["bo-tai-chinh"], nodes["bo-noi-vu"]
    result = send_document(dept, report("242"))  # to the ministry only
    final = relay(nodes, result.message_id, stored(dept, result.envelope_id))
    assert receive_envelope(ministry, final, message_id=result.message_id, recipient=MINISTRY.organ_id).accepted

    # the Ministry of Home Affairs never received it, yet signs "done" about it, addressed to the department
    message_id, data = signed_status(home, HOME_AFFAIRS.organ_id, result.document_id, StatusCode.DONE)
    outcome = receive_envelope(dept, data, message_id=message_id, recipient=SENDER.organ_id)
    assert outcome.accepted and outcome.indication == "TOTAL_PASSED"  # validly signed: its bytes are evidence
    assert count(dept, EnvelopeRow, message_id=message_id, direction="in") == 1
    assert count(dept, StatusRow, document_id=result.document_id, reporter=HOME_AFFAIRS.organ_id) == 0
    (unrelated,) = events_of(dept, "status.unrelated", message_id)
    assert unrelated["sender"] == HOME_AFFAIRS.organ_id and unrelated["document_id"] == result.document_id
    (sent,) = ArchiveIndex(dept.engine).search(ArchiveQuery(document_id=result.document_id, kind="document")).items
    assert sent.latest_status != "06", "the archive's latest status follows the history"
    again = receive_envelope(dept, data, message_id=message_id, recipient=SENDER.organ_id)
    assert again.duplicate and len(events_of(dept, "status.unrelated", message_id)) == 1

    # a recall of the department's document that does not come from the department
    message_id, data = signed_status(home, HOME_AFFAIRS.organ_id, result.document_id, StatusCode.RECALL_REQUESTED)
    forged = receive_envelope(ministry, data, message_id=message_id, recipient=MINISTRY.organ_id)
    assert forged.accepted and forged.answered is None
    assert count(ministry, StatusRow, document_id=result.document_id, direction="in") == 0  # its own 01 only
    assert len(events_of(ministry, "status.unrelated", message_id)) == 1

    # the parties' own statuses are recorded: the ministry's 06 at the department, the department's 13 at the ministry
    done = send_status(ministry, document_id=result.document_id, reporter=MINISTRY.organ_id, code=StatusCode.DONE)
    receive_envelope(dept, stored(ministry, done.envelope_id), message_id=done.message_id, recipient=SENDER.organ_id)
    assert count(dept, StatusRow, document_id=result.document_id, reporter=MINISTRY.organ_id, direction="in") == 1
    recall = send_status(
        dept, document_id=result.document_id, reporter=SENDER.organ_id, code=StatusCode.RECALL_REQUESTED
    )
    received = receive_envelope(
        ministry, stored(dept, recall.envelope_id), message_id=recall.message_id, recipient=MINISTRY.organ_id
    )
    assert received.accepted and not events_of(ministry, "status.unrelated", recall.message_id)
    assert count(ministry, StatusRow, document_id=result.document_id, status_code="13", direction="in") == 1
    # and the ministry may answer the recall
    send_status(ministry, document_id=result.document_id, reporter=MINISTRY.organ_id, code=StatusCode.RECALL_AGREED)


def test_two_senders_may_use_one_document_id_and_each_is_answered_apart(nodes: Nodes) -> None:
    """A DocumentId is the sender's choice (a UUID, say), so two senders can pick the same one: the recipient
    answers the one it names, and refuses to guess."""
    import uuid

    from node.api import status_history
    from node.errors import AmbiguousDocumentError

    dept, home, ministry = nodes["so-tai-chinh"], nodes["bo-noi-vu"], nodes["bo-tai-chinh"]
    shared = str(uuid.uuid4())

    def with_shared_id(message: DocumentMessage) -> DocumentMessage:
        return message.model_copy(update={"header": message.header.model_copy(update={"document_id": shared})})

    first = send_document(dept, with_shared_id(report("250")))
    second = send_document(home, with_shared_id(report("251", sender=HOME_AFFAIRS)))
    for sent, node in ((first, dept), (second, home)):
        data = stored(node, sent.envelope_id)
        assert receive_envelope(ministry, data, message_id=sent.message_id, recipient=MINISTRY.organ_id).accepted

    with pytest.raises(AmbiguousDocumentError, match=f"from 2 senders .*{HOME_AFFAIRS.organ_id}"):
        send_status(ministry, document_id=shared, reporter=MINISTRY.organ_id, code=StatusCode.REGISTERED)
    answer = send_status(
        ministry,
        document_id=shared,
        reporter=MINISTRY.organ_id,
        code=StatusCode.REGISTERED,
        document_sender=HOME_AFFAIRS.organ_id,
    )
    assert answer.recipients == (HOME_AFFAIRS.organ_id,)

    theirs = status_history(ministry, shared, HOME_AFFAIRS.organ_id)
    assert [h["code"] for h in theirs] == ["01", "03"]
    assert {h["document_sender"] for h in theirs} == {HOME_AFFAIRS.organ_id}
    assert [h["code"] for h in status_history(ministry, shared, SENDER.organ_id)] == ["01"]
    assert {h["document_sender"] for h in status_history(ministry, shared)} == {SENDER.organ_id, HOME_AFFAIRS.organ_id}

    # the same over HTTP: 409 naming the senders, then the named one is answered and its history alone listed
    from fastapi.testclient import TestClient

    from node.api import create_app
    from node.tokens import Role, create_token

    token = create_token(ministry, f"clerk-{shared[:8]}", Role.CLERK)
    with TestClient(create_app(ministry, start_workers=False)) as http:
        http.headers["Authorization"] = f"Bearer {token}"
        body = {"document_id": shared, "organisation": MINISTRY.organ_id, "code": 4}
        refused = http.post("/api/v1/statuses", json=body)
        assert refused.status_code == 409 and refused.json()["type"].endswith("ambiguous-document")
        assert SENDER.organ_id in refused.json()["detail"]
        assert http.post("/api/v1/statuses", json={**body, "document_sender": SENDER.organ_id}).status_code == 202
        listed = http.get("/api/v1/statuses", params={"document_id": shared, "sender": SENDER.organ_id}).json()
        assert [h["code"] for h in listed["history"]] == ["01", "04"]


def test_a_document_id_sent_twice_is_routed_and_received_twice(nodes: Nodes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two copies of one DocumentId from one sender (sent again without an idempotency key): both axes route
    both (the route is known already) and the recipient stores both. Answered within one second, their two
    01s are one and the same signed message, queued once."""
    from datetime import datetime, tzinfo

    import node.sending
    import signing.envelope
    from schemas import VIETNAM_TIME

    dept, ministry = nodes["so-tai-chinh"], nodes["bo-tai-chinh"]
    first, second = send_document(dept, report("261")), send_document(dept, report("261"))
    assert first.message_id != second.message_id and first.document_id == second.document_id
    finals = [relay(nodes, sent.message_id, stored(dept, sent.envelope_id)) for sent in (first, second)]

    one_second = datetime.now(VIETNAM_TIME).replace(microsecond=0)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Frozen:
            return cls.fromtimestamp(one_second.timestamp(), tz)

    # the status's timestamp and the XAdES SigningTime, both to the second: one second for both answers
    monkeypatch.setattr(node.sending, "datetime", Frozen)
    monkeypatch.setattr(signing.envelope, "datetime", Frozen)
    for sent, final in zip((first, second), finals, strict=True):
        outcome = receive_envelope(ministry, final, message_id=sent.message_id, recipient=MINISTRY.organ_id)
        assert outcome.accepted and outcome.answered == "01"
    assert count(ministry, EnvelopeRow, direction="in", document_id=first.document_id) == 2
    assert count(ministry, EnvelopeRow, direction="out", document_id=first.document_id, status_code="01") == 1


def test_backoff_does_not_overflow_after_days_of_retries() -> None:
    """``2.0 ** 1024`` overflows a float: a message retried for a week (or an axis whose parent is down) raised
    in the worker at attempt 1025, stayed leased and was retried every lease, never dead-lettered."""
    from node.delivery import backoff_seconds

    assert 150.0 <= backoff_seconds(1025, 1.0, 300.0) <= 300.0
    assert 150.0 <= backoff_seconds(10**6, 1.0, 300.0) <= 300.0


class _Answering:
    """An axis client that answers every envelope (fault injection: ``before`` runs inside the send)."""

    def __init__(self, answer: object, before: object = None) -> None:
        self.answer, self.before, self.sent = answer, before, list[str]()

    def send_envelope(self, data: bytes, message_id: str) -> object:
        self.sent.append(message_id)
        if callable(self.before):
            self.before()
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def send_envelopes(self, batch: list[tuple[bytes, str]]) -> list[object]:
        return [self.send_envelope(data, message_id) for data, message_id in batch]


def outbox_row(runtime: NodeRuntime, envelope_id: int) -> OutboxRow:
    with runtime.session() as s:
        return s.scalars(select(OutboxRow).where(OutboxRow.envelope_id == envelope_id)).one()


def test_a_worker_whose_lease_ran_out_does_not_overwrite_what_the_next_worker_settled(nodes: Nodes) -> None:
    """Worker A's send outlasts its lease; worker B (another thread or replica) re-claims the row and delivers
    it. A's late refusal must not dead-letter a message the axis holds, nor count a second send."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from adapters.axis_client import SendReceipt
    from adapters.errors import PermanentDeliveryError
    from node.delivery import claim_due, deliver_many

    dept = nodes["so-tai-chinh"]
    result = send_document(dept, report("271"))
    row_id = outbox_row(dept, result.envelope_id).id
    # only this row is due (the others wait for their backoff), so the claims below take it alone
    with dept.session() as s:
        s.execute(
            update(OutboxRow)
            .where(OutboxRow.state == "pending", OutboxRow.id != row_id)
            .values(next_attempt_at=datetime.now(UTC) + timedelta(hours=1))
        )
    assert claim_due(dept, 500) == [row_id]  # worker A holds it

    def worker_b() -> None:  # A's lease runs out while A waits for the axis: B takes the row and delivers it
        with dept.session() as s:
            s.execute(update(OutboxRow).where(OutboxRow.id == row_id).values(lease_until=datetime.now(UTC)))
        assert claim_due(dept, 500) == [row_id]
        receipt = SendReceipt(message_id=result.message_id, status="accepted", recipients=(MINISTRY.organ_id,))
        assert deliver_many(dept, [row_id], {"truc-tinh": _Answering(receipt)}) == {row_id: "sent"}  # type: ignore[dict-item]

    late = _Answering(PermanentDeliveryError("timed out behind a proxy that answers 400", status=400), worker_b)
    assert deliver_many(dept, [row_id], {"truc-tinh": late}) == {row_id: "stale"}  # type: ignore[dict-item]
    row = outbox_row(dept, result.envelope_id)
    assert row.state == "done" and row.attempts == 1 and row.last_error is None
    assert not events_of(dept, "delivery.dead", result.message_id)
    assert len(events_of(dept, "message.sent", result.message_id)) == 1

    # and the other way round: both delivered it, only the first says so
    again = _Answering(SendReceipt(message_id=result.message_id, status="duplicate"))
    assert deliver_many(dept, [row_id], {"truc-tinh": again}) == {}  # not pending any more: not sent again
    assert again.sent == []


def test_an_envelope_that_cannot_be_read_does_not_hold_up_the_outbox(nodes: Nodes) -> None:
    """Its object store read raised out of the worker: every row of the claim stayed leased, and the same row,
    due first again, failed every claim after it. Now it is retried alone and the others leave."""
    from sqlalchemy import update

    from adapters.axis_client import SendReceipt
    from node.delivery import deliver_many

    dept = nodes["so-tai-chinh"]
    broken, fine = send_document(dept, report("272")), send_document(dept, report("273"))
    with dept.session() as s:
        s.execute(
            update(EnvelopeRow).where(EnvelopeRow.id == broken.envelope_id).values(object_key="sha256/" + "0" * 64)
        )
    ids = [outbox_row(dept, broken.envelope_id).id, outbox_row(dept, fine.envelope_id).id]
    receipt = SendReceipt(message_id=fine.message_id, status="accepted")
    client = _Answering(receipt)
    assert deliver_many(dept, ids, {"truc-tinh": client}) == {ids[0]: "retry", ids[1]: "sent"}  # type: ignore[dict-item]
    assert client.sent == [fine.message_id]
    row = outbox_row(dept, broken.envelope_id)
    assert row.state == "pending" and row.lease_until is None and "cannot be read" in (row.last_error or "")


def test_a_poison_message_does_not_block_the_inbox_and_is_given_up_on_with_an_alert(
    nodes: Nodes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One envelope that makes the node raise, oldest in the inbox: it was listed first again and again and
    nothing behind it was ever received. Now the others are received; it is acknowledged ``fail`` (alert and
    event) only after repeated failures while the node received other deliveries."""
    import base64
    import hashlib
    from datetime import UTC, datetime

    import node.delivery
    import node.receiving
    from adapters.axis_client import Ack, InboxItem
    from node.delivery import InboxMemory, inbox_step

    dept, ministry = nodes["so-tai-chinh"], nodes["bo-tai-chinh"]
    sent = [send_document(dept, report(n)) for n in ("274", "275", "276")]
    finals = [relay(nodes, r.message_id, stored(dept, r.envelope_id)) for r in sent]
    poison_id = sent[0].message_id
    real_verify = node.receiving.verify_received

    def verify(runtime: NodeRuntime, data: bytes, name: str = "envelope") -> object:
        if envelope_message_id(data) == poison_id:  # fault injection: what a verifier bug does to one input
            raise AttributeError("'ArrayObject' object has no attribute 'get_object'")
        return real_verify(runtime, data, name)

    monkeypatch.setattr(node.receiving, "verify_received", verify)

    def item(n: int) -> InboxItem:
        return InboxItem(
            delivery_id=f"d-poison-{n}",
            message_id=sent[n].message_id,
            sender=SENDER.organ_id,
            recipient=MINISTRY.organ_id,
            kind="document",
            size=len(finals[n]),
            sha256=hashlib.sha256(finals[n]).hexdigest(),
            received_at=datetime.now(UTC),
            data=base64.b64encode(finals[n]).decode(),
        )

    class Axis:  # lists, oldest first, what was not acknowledged yet
        def __init__(self, queued: list[int]) -> None:
            self.queued = queued

        def next_batch(
            self, acks: list[Ack], limit: int, *, wait: float, inline: int
        ) -> tuple[list[InboxItem], list[str]]:
            done = {a.delivery_id for a in acks}
            self.queued = [n for n in self.queued if f"d-poison-{n}" not in done]
            return [item(n) for n in self.queued], []

    assert ministry.upstream is not None
    monkeypatch.setattr(node.delivery, "POISON_BACKOFF", 0.0)  # tried again at the next step
    axis, memory, pending = Axis([0, 1]), InboxMemory(), list[Ack]()
    clients: dict[str, object] = {ministry.upstream.node_id: axis}
    assert inbox_step(ministry, clients, pending, memory)  # type: ignore[arg-type]
    assert pending == [Ack("d-poison-1", "done", None)], "the message behind the poison one is received"
    assert count(ministry, EnvelopeRow, direction="in", message_id=sent[1].message_id) == 1

    # tried again (only failures: not busy), and given up on only as the constants say
    monkeypatch.setattr(node.delivery, "POISON_AFTER", 0.0)
    monkeypatch.setattr(node.delivery, "POISON_ATTEMPTS", 3)
    assert not inbox_step(ministry, clients, pending, memory)  # type: ignore[arg-type]
    assert pending == []
    with caplog.at_level("ERROR"):
        assert inbox_step(ministry, clients, pending, memory)  # type: ignore[arg-type]
    (gave_up,) = pending
    assert (
        gave_up.delivery_id == "d-poison-0" and gave_up.outcome == "fail" and "AttributeError" in (gave_up.reason or "")
    )
    assert "ALERT" in caplog.text and poison_id in caplog.text
    (dead,) = events_of(ministry, "delivery.dead", poison_id)
    assert dead["attempts"] == 3 and dead["recipient"] == MINISTRY.organ_id
    inbox_step(ministry, clients, pending, memory)  # type: ignore[arg-type]
    assert axis.queued == []

    # a node that receives nothing at all (its own trouble, not the message's) gives up on nothing
    axis, memory = Axis([0]), InboxMemory()
    clients = {ministry.upstream.node_id: axis}
    for _ in range(5):
        inbox_step(ministry, clients, pending, memory)  # type: ignore[arg-type]
        assert pending == []
    assert memory.failures["d-poison-0"].attempts == 5


def test_a_status_that_arrives_late_joins_the_history_but_is_not_the_latest(
    nodes: Nodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 03 was stated before the 05 but arrives after it (retried for hours at some hop): the history
    is ordered by when each was stated, and the archive's latest status stays 05, not 03."""
    from datetime import datetime, timedelta, tzinfo

    import node.sending
    from node.api import status_history
    from schemas import VIETNAM_TIME
    from storage.archive import ArchiveIndex, ArchiveQuery

    dept, ministry = nodes["so-tai-chinh"], nodes["bo-tai-chinh"]
    result = send_document(dept, report("277"))
    final = relay(nodes, result.message_id, stored(dept, result.envelope_id))
    assert receive_envelope(ministry, final, message_id=result.message_id, recipient=MINISTRY.organ_id).accepted

    at = datetime.now(VIETNAM_TIME).replace(microsecond=0) - timedelta(hours=2)

    class Clock(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Clock:
            return cls.fromtimestamp(at.timestamp(), tz)

    monkeypatch.setattr(node.sending, "datetime", Clock)
    answers = {}
    for code in (StatusCode.REGISTERED, StatusCode.IN_PROGRESS):
        answers[code] = send_status(ministry, document_id=result.document_id, reporter=MINISTRY.organ_id, code=code)
        at += timedelta(hours=1)
    for code in (StatusCode.IN_PROGRESS, StatusCode.REGISTERED):  # out of order
        answer = answers[code]
        data = stored(ministry, answer.envelope_id)
        assert receive_envelope(dept, data, message_id=answer.message_id, recipient=SENDER.organ_id).accepted

    assert [h["code"] for h in status_history(dept, result.document_id)] == ["03", "05"]
    (entry,) = ArchiveIndex(dept.engine).search(ArchiveQuery(document_id=result.document_id, kind="document")).items
    assert entry.latest_status == "05"


def test_two_acknowledgements_of_one_delivery_at_once_count_once(nodes: Nodes) -> None:
    """Two replicas of the ministry's node acknowledge the same delivery in the same instant (both read it
    queued, then both write): the first counts, the other changes nothing and records nothing."""
    import contextlib
    import threading

    from sqlalchemy import event

    from node.api import AckItem, _acknowledge

    dept, low = nodes["so-tai-chinh"], nodes["truc-tinh"]
    result = send_document(dept, report("262", to=(PROVINCE,)))
    sent = stored(dept, result.envelope_id)
    accept_envelope(low, sent, message_id=result.message_id, from_node=low.peer("so-tai-chinh"))  # type: ignore[arg-type]
    with low.session() as s:
        query = select(DeliveryRow.delivery_id).where(DeliveryRow.message_id == result.message_id)
        delivery_id = s.scalars(query).one()

    both_read = threading.Barrier(2, timeout=3)

    def after_both_read(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("UPDATE DELIVERIES"):
            # SQLite lets one writer in at a time: there the other waits its turn instead, and the barrier breaks
            with contextlib.suppress(threading.BrokenBarrierError):
                both_read.wait()

    outcomes: dict[str, int] = {}

    def acknowledge(outcome: str) -> None:
        known, _ = _acknowledge(low, "ubnd-tinh", [AckItem(delivery_id=delivery_id, outcome=outcome)])
        outcomes[outcome] = known

    event.listen(low.engine, "before_cursor_execute", after_both_read)
    try:
        threads = [threading.Thread(target=acknowledge, args=(o,)) for o in ("done", "fail")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        event.remove(low.engine, "before_cursor_execute", after_both_read)
    assert outcomes == {"done": 1, "fail": 1}  # both ids were known
    entries = (e.event() for e in low.audit.entries(0, low.audit.size()))
    settling = ("message.delivered", "delivery.failed")
    settled = [e for e in entries if e["type"] in settling and e.get("message_id") == result.message_id]
    assert len(settled) == 1, settled
    with low.session() as s:
        state = s.scalars(select(DeliveryRow.state).where(DeliveryRow.delivery_id == delivery_id)).one()
    assert state == ("done" if settled[0]["type"] == "message.delivered" else "failed")


# -- what became of a message after the first hop -----------------------------------------------------------


def delivery_row(runtime: NodeRuntime, message_id: str, recipient: str) -> DeliveryRow:
    with runtime.session() as s:
        return s.scalars(
            select(DeliveryRow).where(DeliveryRow.message_id == message_id, DeliveryRow.recipient == recipient)
        ).one()


def test_a_delivery_no_node_fetches_expires_at_the_axis_once_with_an_alert(
    nodes: Nodes, caplog: pytest.LogCaptureFixture
) -> None:
    """A recipient's node that never polls again (decommissioned, a wrong key) left its deliveries queued
    forever, and the sender waiting for a 01 that could not come: past the maximum age they expire."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from node.api import AckItem, _acknowledge, _inbox
    from node.delivery import expire_deliveries

    dept, low = nodes["so-tai-chinh"], nodes["truc-tinh"]
    old, young = send_document(dept, report("281", to=(PROVINCE,))), send_document(dept, report("282", to=(PROVINCE,)))
    for sent in (old, young):
        accept_envelope(
            low, stored(dept, sent.envelope_id), message_id=sent.message_id, from_node=low.peer("so-tai-chinh")
        )  # type: ignore[arg-type]
    max_age = low.settings.delivery.max_age
    with low.session() as s:
        s.execute(
            update(DeliveryRow)
            .where(DeliveryRow.message_id == old.message_id)
            .values(created_at=datetime.now(UTC) - timedelta(seconds=max_age + 5))
        )
    with caplog.at_level("ERROR"):
        assert expire_deliveries(low) >= 1
    expired = delivery_row(low, old.message_id, PROVINCE.organ_id)
    assert expired.state == "expired" and expired.acked_at is not None
    assert "not fetched" in (expired.outcome_reason or "")
    assert delivery_row(low, young.message_id, PROVINCE.organ_id).state == "queued"  # younger: still waiting
    assert "ALERT" in caplog.text and old.message_id in caplog.text
    (dead,) = events_of(low, "delivery.dead", old.message_id)
    assert dead["node"] == "ubnd-tinh" and dead["recipient"] == PROVINCE.organ_id
    # once: swept again, nothing new; no longer listed; a late acknowledgement changes nothing
    expire_deliveries(low)
    assert len(events_of(low, "delivery.dead", old.message_id)) == 1
    listed = {i["message_id"] for i in _inbox(low, "ubnd-tinh", 500)}
    assert old.message_id not in listed and young.message_id in listed
    _acknowledge(low, "ubnd-tinh", [AckItem(delivery_id=expired.delivery_id, outcome="done")])
    assert delivery_row(low, old.message_id, PROVINCE.organ_id).state == "expired"
    assert not events_of(low, "message.delivered", old.message_id)


def axis_client(axis: NodeRuntime, http: object, caller: NodeRuntime) -> object:
    """``caller``'s signed client of ``axis``'s app, in process (a TestClient as its transport)."""
    import httpx

    from adapters.axis_client import AxisClient

    peer = caller.upstream
    assert peer is not None and peer.node_id == axis.settings.node_id
    transport = httpx.MockTransport(lambda request: http.send(request))  # type: ignore[attr-defined]
    return AxisClient("http://testserver", caller.node_key, peer.public_key, peer_id=peer.node_id, transport=transport)


def test_the_axis_tells_the_sender_and_only_the_sender_what_became_of_its_message(nodes: Nodes) -> None:
    """``GET /exchange/sent/{id}``: per recipient, the delivery at this axis or the forward to its parent."""
    from fastapi.testclient import TestClient
    from sqlalchemy import update

    from adapters.axis_client import AxisClient, SentReport
    from adapters.errors import PermanentDeliveryError
    from node.api import AckItem, _acknowledge, create_app

    dept, low, province = nodes["so-tai-chinh"], nodes["truc-tinh"], nodes["ubnd-tinh"]
    sent = send_document(dept, report("283", to=(MINISTRY, PROVINCE)))
    accept_envelope(low, stored(dept, sent.envelope_id), message_id=sent.message_id, from_node=low.peer("so-tai-chinh"))  # type: ignore[arg-type]

    with TestClient(create_app(low, start_workers=False)) as http:
        client = axis_client(low, http, dept)
        assert isinstance(client, AxisClient)

        def states(report: SentReport) -> dict[str, tuple[object, ...]]:
            return {r.recipient: (r.at, r.state, r.node, r.forward, r.reason) for r in report.recipients}

        first = client.sent(sent.message_id)
        assert first.sender == SENDER.organ_id
        assert states(first) == {
            PROVINCE.organ_id: ("truc-tinh", "queued", "ubnd-tinh", None, None),
            MINISTRY.organ_id: ("truc-tinh", "forwarded", "truc-tw", "pending", None),
        }
        # the province's node cannot take it; the parent axis refused the forward for good
        delivery_id = delivery_row(low, sent.message_id, PROVINCE.organ_id).delivery_id
        _acknowledge(low, "ubnd-tinh", [AckItem(delivery_id=delivery_id, outcome="fail", reason="không đúng nơi nhận")])
        with low.session() as s:
            forward = s.scalars(
                select(OutboxRow)
                .join(EnvelopeRow, EnvelopeRow.id == OutboxRow.envelope_id)
                .where(EnvelopeRow.direction == "transit", EnvelopeRow.message_id == sent.message_id)
            ).one()
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id == forward.id)
                .values(state="dead", last_error="HTTP 422 unknown-recipient")
            )
        reports, unknown = client.sent_many([sent.message_id, "f" * 64])
        assert unknown == ["f" * 64] and [r.message_id for r in reports] == [sent.message_id]
        after = states(reports[0])
        assert after[PROVINCE.organ_id] == ("truc-tinh", "failed", "ubnd-tinh", None, "không đúng nơi nhận")
        assert after[MINISTRY.organ_id] == ("truc-tinh", "forwarded", "truc-tw", "dead", "HTTP 422 unknown-recipient")
        assert all(r.failed and r.final for r in reports[0].recipients)

        # another node may not probe: the department's message is unknown to it, as an id nobody sent
        stranger = axis_client(low, http, province)
        assert isinstance(stranger, AxisClient)
        with pytest.raises(PermanentDeliveryError) as info:
            stranger.sent(sent.message_id)
        assert info.value.status == 404 and info.value.problem_type == "urn:lienthong:problem:not-found"
        assert stranger.sent_many([sent.message_id]) == ([], [sent.message_id])
        with pytest.raises(PermanentDeliveryError) as unknown_id:
            client.sent("e" * 64)
        assert unknown_id.value.status == 404
        # unsigned: refused before anything is looked up
        assert http.get(f"/api/v1/exchange/sent/{sent.message_id}").status_code == 401


def test_a_recipient_s_fail_reaches_the_sender_s_status_and_exit_code(nodes: Nodes) -> None:
    """Delivered to the axis, then refused by the recipient's node: the sender's outbox said "done" forever
    and the clerk waited for a 01. After ``answer_wait`` the sender asks its axis, once per interval, and the
    clerk sees why (GET /api/v1/statuses, ``lienthong status`` exits 1)."""
    from datetime import UTC, datetime, timedelta

    from fastapi.testclient import TestClient
    from sqlalchemy import update
    from typer.testing import CliRunner

    from node.api import AckItem, _acknowledge, create_app, sent_copies
    from node.cli import app as cli
    from node.delivery import ask_about_unanswered
    from node.tokens import Role, create_token

    dept, low = nodes["so-tai-chinh"], nodes["truc-tinh"]
    sent = send_document(dept, report("284", to=(PROVINCE,)))
    accept_envelope(low, stored(dept, sent.envelope_id), message_id=sent.message_id, from_node=low.peer("so-tai-chinh"))  # type: ignore[arg-type]
    now = datetime.now(UTC)
    with dept.session() as s:  # what the outbox worker records when the axis accepts it
        s.execute(update(OutboxRow).where(OutboxRow.envelope_id == sent.envelope_id).values(state="done", done_at=now))
    delivery_id = delivery_row(low, sent.message_id, PROVINCE.organ_id).delivery_id
    _acknowledge(low, "ubnd-tinh", [AckItem(delivery_id=delivery_id, outcome="fail", reason="chữ ký không hợp lệ")])

    wait = dept.settings.delivery.answer_wait
    interval = dept.settings.delivery.answer_check_interval
    with TestClient(create_app(low, start_workers=False)) as http:
        clients = {"truc-tinh": axis_client(low, http, dept)}
        ask_about_unanswered(dept, clients, now=now)  # type: ignore[arg-type]
        assert outbox_row(dept, sent.envelope_id).fate_checked_at is None, "not before answer_wait"
        later = now + timedelta(seconds=wait + 1)
        assert ask_about_unanswered(dept, clients, now=later) >= 1  # type: ignore[arg-type]
        row = outbox_row(dept, sent.envelope_id)
        assert row.fate_checked_at is not None and row.fate_settled_at is not None  # failed: final, not asked again
        ask_about_unanswered(dept, clients, now=later + timedelta(seconds=interval + 1))  # type: ignore[arg-type]
    (undelivered,) = events_of(dept, "message.undelivered", sent.message_id)
    assert undelivered["recipient"] == PROVINCE.organ_id and undelivered["at"] == "truc-tinh"

    expected = f"failed at truc-tinh for {PROVINCE.organ_id}: chữ ký không hợp lệ"
    (copy,) = sent_copies(dept, sent.document_id)
    assert copy["state"] == "done" and [f["text"] for f in copy["failed"]] == [expected]
    token = create_token(dept, f"clerk-{sent.message_id[:8]}", Role.CLERK)
    with TestClient(create_app(dept, start_workers=False)) as api:
        answer = api.get(
            "/api/v1/statuses",
            params={"document_id": sent.document_id},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200 and answer.json()["sent"][0]["failed"][0]["text"] == expected
    config = nodes.network.nodes["so-tai-chinh"].config
    result = CliRunner().invoke(cli, ["status", sent.document_id, "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert expected in " ".join(result.output.split())


def forward_of(axis: NodeRuntime, message_id: str) -> OutboxRow:
    with axis.session() as s:
        return s.scalars(
            select(OutboxRow)
            .join(EnvelopeRow, EnvelopeRow.id == OutboxRow.envelope_id)
            .where(EnvelopeRow.direction == "transit", EnvelopeRow.message_id == message_id)
        ).one()


def test_an_axis_asks_its_parent_only_about_what_a_child_asked_and_at_most_once_per_interval(nodes: Nodes) -> None:
    """Two axes: the provincial axis said "forwarded to truc-tw, done" while the ministry's node, below truc-tw,
    refused it. Asked by the department, it asks truc-tw in turn (once per child question and check interval,
    never once truc-tw's answer is final), and the department's next question learns the failure there."""
    from datetime import UTC, datetime, timedelta

    from fastapi.testclient import TestClient
    from sqlalchemy import update

    from node.api import AckItem, _acknowledge, create_app, sent_copies
    from node.delivery import ask_about_unanswered, ask_parent_about_forwards
    from node.routing import sent_report

    dept, low, top = nodes["so-tai-chinh"], nodes["truc-tinh"], nodes["truc-tw"]
    refused, waiting = send_document(dept, report("285")), send_document(dept, report("286"))
    now = datetime.now(UTC)
    for sent in (refused, waiting):
        relay(nodes, sent.message_id, stored(dept, sent.envelope_id))
        with dept.session() as s:  # what the outbox workers record when each axis accepts it
            s.execute(
                update(OutboxRow).where(OutboxRow.envelope_id == sent.envelope_id).values(state="done", done_at=now)
            )
        with low.session() as s:
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id == forward_of(low, sent.message_id).id)
                .values(state="done", done_at=now)
            )
    delivery_id = delivery_row(top, refused.message_id, MINISTRY.organ_id).delivery_id
    _acknowledge(top, "bo-tai-chinh", [AckItem(delivery_id=delivery_id, outcome="fail", reason="không nhận cho G12")])

    wait = dept.settings.delivery.answer_wait
    interval = low.settings.delivery.answer_check_interval
    t1 = now + timedelta(seconds=wait + 1)
    with (
        TestClient(create_app(low, start_workers=False)) as low_http,
        TestClient(create_app(top, start_workers=False)) as top_http,
    ):
        dept_clients = {"truc-tinh": axis_client(low, low_http, dept)}
        low_clients = {"truc-tw": axis_client(top, top_http, low)}
        # nobody asked yet: the axis asks its parent nothing
        assert ask_parent_about_forwards(low, low_clients, now=t1) == 0  # type: ignore[arg-type]
        # the department asks: "forwarded, done", not yet final, so neither copy is settled; both are marked
        assert ask_about_unanswered(dept, dept_clients, now=t1) == 2  # type: ignore[arg-type]
        assert outbox_row(dept, refused.envelope_id).fate_settled_at is None
        assert forward_of(low, refused.message_id).fate_asked_at is not None
        assert ask_parent_about_forwards(low, low_clients, now=t1) == 2  # type: ignore[arg-type]
        settled = forward_of(low, refused.message_id)
        assert settled.fate_settled_at is not None and settled.fate_asked_at is None  # failed there: final
        open_ = forward_of(low, waiting.message_id)
        assert open_.fate_settled_at is None and open_.fate and open_.fate[0]["state"] == "queued"
        # no new question from a child: nothing asked, however late
        assert ask_parent_about_forwards(low, low_clients, now=t1 + timedelta(seconds=10 * interval)) == 0  # type: ignore[arg-type]
        # a child asks again: asked again, but not before the interval since the last question
        found, _ = sent_report(low, low.peer("so-tai-chinh"), [waiting.message_id, refused.message_id])  # type: ignore[arg-type]
        assert forward_of(low, refused.message_id).fate_asked_at is None  # settled: not marked again
        assert ask_parent_about_forwards(low, low_clients, now=t1 + timedelta(seconds=interval / 2)) == 0  # type: ignore[arg-type]
        assert ask_parent_about_forwards(low, low_clients, now=t1 + timedelta(seconds=interval + 1)) == 1  # type: ignore[arg-type]
        by_id = {f["message_id"]: f for f in found}
        (further,) = [r["further"] for r in by_id[refused.message_id]["recipients"]]
        assert (further["at"], further["state"], further["node"]) == ("truc-tw", "failed", "bo-tai-chinh")

        # the department's next question: the failure at truc-tw, once; the other copy still open
        t2 = t1 + timedelta(seconds=dept.settings.delivery.answer_check_interval + 1)
        assert ask_about_unanswered(dept, dept_clients, now=t2) == 2  # type: ignore[arg-type]
        assert outbox_row(dept, refused.envelope_id).fate_settled_at is not None
        assert outbox_row(dept, waiting.envelope_id).fate_settled_at is None
    expected = f"forwarded to truc-tw: failed at truc-tw for {MINISTRY.organ_id}: không nhận cho G12"
    (copy,) = sent_copies(dept, refused.document_id)
    assert [f["text"] for f in copy["failed"]] == [expected]
    (undelivered,) = events_of(dept, "message.undelivered", refused.message_id)
    assert (undelivered["at"], undelivered["via"], undelivered["state"]) == ("truc-tw", "truc-tinh", "failed")
    assert not events_of(dept, "message.undelivered", waiting.message_id)


# --- seal_level: B-LT ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_term_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Nodes, object]]:
    """One axis, the department sealing at B-LT (with a TSA) and the ministry; SQLite; the dev PKI's responders."""
    from signing.devpki import serve_dev_pki
    from tests.node.exchange_network import ONE_AXIS, SENDER_AND_MINISTRY

    directory: Path = tmp_path_factory.mktemp("long-term")
    with serve_dev_pki(directory / "pki", port=0) as responders:
        network = write_network(
            directory,
            ONE_AXIS,
            SENDER_AND_MINISTRY,
            pki_base_url=responders.url,
            extra={"so-tai-chinh": {"seal_level": "B-LT"}},
        )
        runtimes = {n: NodeRuntime(load_settings(p.config)) for n, p in network.nodes.items()}
        try:
            yield Nodes(network, runtimes), responders
        finally:
            for runtime in runtimes.values():
                runtime.close()


def test_a_node_sealing_at_b_lt_sends_pdfs_that_verify_b_lt_offline_where_they_arrive(
    long_term_network: tuple[Nodes, object],
) -> None:
    from signing.devpki import DevPki, RunningResponders
    from signing.errors import SigningError
    from signing.pdf import LongTermError, verify_pdf

    nodes, responders = long_term_network
    assert isinstance(responders, RunningResponders)
    dept, axis, ministry = nodes["so-tai-chinh"], nodes["truc"], nodes["bo-tai-chinh"]
    assert dept.settings.seal_level == "B-LT" and ministry.settings.seal_level == "B-T"  # the default
    sent = send_document(dept, report("290"))
    accept_envelope(
        axis, stored(dept, sent.envelope_id), message_id=sent.message_id, from_node=axis.peer("so-tai-chinh")
    )  # type: ignore[arg-type]
    outcome = receive_envelope(
        ministry, transit_bytes(axis, sent.message_id), message_id=sent.message_id, recipient=MINISTRY.organ_id
    )
    assert outcome.indication == "TOTAL_PASSED", outcome.reasons
    assert outcome.envelope_id is not None
    (pdf,) = [a.data for a in parse_message(stored(ministry, outcome.envelope_id)).message.attachments]

    responders.stop()  # the archive has only the document: no responder, no node's evidence
    pki = DevPki.load(nodes.network.directory / "pki")
    offline = pki.trust_store(revocation="require", allow_fetching=False)
    (seal,) = verify_pdf("bao-cao.pdf", pdf, offline)
    assert seal.indication.value == "TOTAL_PASSED", seal.reasons
    assert seal.level == "B-LT"
    assert seal.role == "organisation" and seal.validation_time_source == "timestamp"

    # a seal whose validation data cannot be had (here: no responder answers) is the node's problem, not the
    # clerk's file: a SigningError (503, "cannot sign now"), not a SendError (422), and nothing is queued
    fresh = NodeRuntime(load_settings(nodes.network.nodes["so-tai-chinh"].config))
    try:
        before = count(fresh, EnvelopeRow)
        with pytest.raises(SigningError) as failed:
            send_document(fresh, report("291"))
        assert isinstance(failed.value, LongTermError), repr(failed.value)
        assert count(fresh, EnvelopeRow) == before
    finally:
        fresh.close()


def test_a_worker_refused_by_its_peer_says_why_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    """An operator reads the peer's refusal (e.g. a wrong node id), not a traceback, at each round."""
    import logging
    import threading

    from adapters.errors import PermanentDeliveryError
    from node.delivery import Worker

    rounds = threading.Event()

    def refused() -> bool:
        rounds.set()
        raise PermanentDeliveryError("asking the axis to cosign: HTTP 401: unknown key 'x'", status=401)

    worker = Worker("witness", refused, interval=0.05)
    with caplog.at_level(logging.WARNING, logger="lienthong.delivery"):
        worker.start()
        assert rounds.wait(5)
        worker.stop()
        worker.join(5)
    said = [r for r in caplog.records if r.name == "lienthong.delivery"]
    assert said and all(r.levelno == logging.ERROR and r.exc_info is None for r in said)
    assert "HTTP 401: unknown key 'x'" in said[0].getMessage()
