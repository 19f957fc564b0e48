"""Faults: processes SIGKILLed at random points for a bounded number of rounds; nothing lost, nothing twice.

One axis, a sending department and the ministry, each a real process. Every round sends a few reports and
kills one process (the axis mid-delivery, the recipient while it verifies, the sender right after it signed
and queued) at a random moment, keeps it down for a while and restarts it. Clerks retry a send whose answer
was lost with the same idempotency key, as the API asks them to. At the end every report is in the
ministry's store exactly once and every one was answered 01.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from node.cli.demo import message_form
from node.network import RunningNetwork, write_network
from tests.node.exchange_network import ONE_AXIS, SENDER_AND_MINISTRY, Clerk, report, wait_until

pytestmark = pytest.mark.slow

ROUNDS = 4
PER_ROUND = 3
SEED = 20261123


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNetwork]:
    from signing.devpki import serve_dev_pki

    directory: Path = tmp_path_factory.mktemp("faults")
    with serve_dev_pki(directory / "pki", port=0) as responders:
        net = write_network(
            directory,
            ONE_AXIS,
            SENDER_AND_MINISTRY,
            pki_base_url=responders.url,
            timestamps=False,
            poll_interval=0.2,
        )
        running = RunningNetwork(net)
        try:
            running.start()
            yield running
        finally:
            running.stop_all()


def send_with_retries(running: RunningNetwork, number: str) -> dict[str, object]:
    """POST a report; when the sender is down or the answer is lost, retry with the same idempotency key."""
    plan = running.network.node("so-tai-chinh")
    spec, files = message_form(report(number))
    deadline = time.monotonic() + 60
    while True:
        try:
            r = httpx.post(
                f"{plan.url}/api/v1/messages",
                data={"message": json.dumps(spec, ensure_ascii=False)},
                files=files,
                headers={"Authorization": f"Bearer {plan.token}", "Idempotency-Key": f"faults-{number}"},
                timeout=30,
            )
            if r.status_code == 202:
                return dict(r.json())
            raise AssertionError(r.text)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            if "so-tai-chinh" not in running.processes:
                running.start(["so-tai-chinh"])
            time.sleep(0.2)


def test_random_kills_lose_nothing_and_duplicate_nothing(network: RunningNetwork) -> None:
    rng = random.Random(SEED)
    victims = ["truc", "bo-tai-chinh", "so-tai-chinh"]
    sent: dict[str, str] = {}  # document id → message id
    for round_number in range(ROUNDS):
        victim = victims[round_number % len(victims)] if round_number < len(victims) else rng.choice(victims)
        numbers = [f"9{round_number}{i}" for i in range(PER_ROUND)]
        if victim == "so-tai-chinh":
            # killed between signing and sending: the report is queued, the outbox has not run yet
            for number in numbers:
                result = send_with_retries(network, number)
                sent[str(result["document_id"])] = str(result["message_id"])
            network.kill(victim)
        else:
            for number in numbers:
                result = send_with_retries(network, number)
                sent[str(result["document_id"])] = str(result["message_id"])
            time.sleep(rng.uniform(0.0, 1.0))
            network.kill(victim)
        time.sleep(rng.uniform(0.3, 1.5))  # down for a while: the others retry and back off
        network.start([victim])

    plan = network.network.node("bo-tai-chinh")
    ministry = Clerk(plan.url, plan.token)
    dept_plan = network.network.node("so-tai-chinh")
    dept = Clerk(dept_plan.url, dept_plan.token)

    def all_received() -> bool:
        return {r["document_id"] for r in ministry.received(kind="document")} >= set(sent)

    wait_until("every report at the ministry", all_received, timeout=120)
    received = ministry.received(kind="document")
    counts = Counter(r["message_id"] for r in received)
    assert {m: c for m, c in counts.items() if c > 1} == {}, "a report was stored twice"
    assert set(counts) >= set(sent.values())
    assert all(r["verified"] == "TOTAL_PASSED" for r in received)
    for document_id in sent:
        wait_until(f"01 for {document_id}", lambda d=document_id: any(h["code"] == "01" for h in dept.statuses(d)), 120)
        history = dept.statuses(document_id)
        assert Counter(h["code"] for h in history)["01"] == 1, history


def test_duplicate_and_out_of_order_deliveries_are_stored_once(network: RunningNetwork) -> None:
    """The sender's node hands the same envelope over again, out of turn, after newer ones: nothing changes."""
    from adapters.httpsig import NodeKey, sign_request
    from node.config import load_settings
    from node.runtime import NodeRuntime
    from storage.exchange import EnvelopeRow

    first = send_with_retries(network, "981")
    second = send_with_retries(network, "982")
    plan = network.network.node("bo-tai-chinh")
    ministry = Clerk(plan.url, plan.token)
    wait_until(
        "both delivered",
        lambda: ministry.received(str(second["document_id"])) and ministry.received(str(first["document_id"])),
    )

    sender_plan = network.network.node("so-tai-chinh")
    runtime = NodeRuntime(load_settings(sender_plan.config), create=False)
    try:
        with runtime.session() as s:
            from sqlalchemy import select

            key = s.scalars(
                select(EnvelopeRow.object_key).where(
                    EnvelopeRow.direction == "out", EnvelopeRow.message_id == str(first["message_id"])
                )
            ).one()
        data = runtime.objects.get(key)
    finally:
        runtime.close()
    node_key = NodeKey.load(network.network.directory / "so-tai-chinh" / "node-key.pem", "so-tai-chinh")
    url = network.network.node("truc").url + "/api/v1/exchange/envelopes"
    for _ in range(3):  # the older envelope again, after the newer one, three times
        headers = {"content-type": "application/xml", "lienthong-message-id": str(first["message_id"])}
        headers |= sign_request("POST", url, headers, data, node_key, to="truc")
        r = httpx.post(url, content=data, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "duplicate"
    time.sleep(1.0)
    copies = [r for r in ministry.received(kind="document") if r["message_id"] == first["message_id"]]
    assert len(copies) == 1


def test_a_stopped_axis_ends_its_open_long_polls_instead_of_cancelling_them(network: RunningNetwork) -> None:
    """SIGTERM while the agencies long-poll it: each poll ends (empty) and the axis exits, with nothing in its
    log about a cancelled request: an operator reads an ERROR there as something lost."""
    log = network.log_dir / "truc.log"
    already = log.stat().st_size
    time.sleep(1.5)  # both agencies are inside a long-poll by now: they poll again as soon as one ends
    started = time.monotonic()
    network.stop("truc")
    took = time.monotonic() - started
    network.start(["truc"])
    said = log.read_bytes()[already:].decode(errors="replace")
    assert "CancelledError" not in said and "Exception in ASGI application" not in said, said
    assert "database sqlite:///" in said and "; objects " in said  # the restart says which backends it uses
    assert took < 2.0, f"the axis took {took:.1f}s to stop"
