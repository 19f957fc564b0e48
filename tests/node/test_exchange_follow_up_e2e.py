"""End to end, real processes: a delivery the recipient's node acknowledges ``fail`` two axes away reaches
the sender (GET /api/v1/statuses ``sent[].failed``, ``lienthong status`` exit 1), for a document and a recall.

Its own small network, with answers asked about after a second instead of an hour:

national axis (truc-tw) ── bo-tai-chinh (registered there for 000.00.00.G12 and 000.00.00.G09)
    └── provincial axis (truc-tinh) ── so-tai-chinh (000.01.41.H41)

The ministry's node no longer receives for 000.00.00.G09 (its organisation moved out of the node's config)
while the national axis still routes G09 to it: a stale registration, a real cause of a ``fail`` — the node
acknowledges "this node does not receive for 000.00.00.G09", and only truc-tw knows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from node.network import AgencySpec, write_network
from node.samples import MINISTRY, SENDER
from tests.node.exchange_network import AXES, HOME_AFFAIRS, Clerk, Exchange, report, run_exchange, wait_until

pytestmark = pytest.mark.slow

AGENCIES = (
    AgencySpec(
        "bo-tai-chinh",
        "truc-tw",
        ((MINISTRY.organ_id, MINISTRY.organ_name), (HOME_AFFAIRS.organ_id, HOME_AFFAIRS.organ_name)),
    ),
    AgencySpec("so-tai-chinh", "truc-tinh", ((SENDER.organ_id, SENDER.organ_name),)),
)
# quick follow-up: asked about one second after delivery, then once a second at most
DELIVERY = {
    "poll_interval": 0.2,
    "initial_backoff": 0.2,
    "max_backoff": 5.0,
    "answer_wait": 1.0,
    "answer_check_interval": 1.0,
}
NOT_HERE = f"this node does not receive for {HOME_AFFAIRS.organ_id}"


@pytest.fixture(scope="module")
def stale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    from signing.devpki import serve_dev_pki

    directory: Path = tmp_path_factory.mktemp("follow-up")
    with serve_dev_pki(directory / "pki", port=0) as responders:
        network = write_network(
            directory,
            AXES,
            AGENCIES,
            pki_base_url=responders.url,
            poll_interval=0.2,
            checkpoint_interval=1.0,
            timestamps=False,
            extra={n: {"delivery": DELIVERY} for n in ("truc-tw", "truc-tinh", "bo-tai-chinh", "so-tai-chinh")},
        )
        # the ministry's node drops G09; the national axis's registration of it is left as it was
        path = network.nodes["bo-tai-chinh"].config
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        config["organisations"] = [o for o in config["organisations"] if o["code"] != HOME_AFFAIRS.organ_id]
        path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
        yield from run_exchange(network)


def sent_of(clerk: Clerk, document_id: str) -> list[dict[str, Any]]:
    r = clerk.http.get("/api/v1/statuses", params={"document_id": document_id})
    assert r.status_code == 200, r.text
    return list(r.json()["sent"])


def status_command(stale: Exchange, document_id: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from node.cli import app as cli

    config = stale.network.nodes["so-tai-chinh"].config
    result = CliRunner().invoke(cli, ["status", document_id, "--config", str(config)])
    return result.exit_code, " ".join(result.output.split())


def test_a_document_refused_two_axes_away_reaches_the_sender_s_status_and_exit_code(stale: Exchange) -> None:
    dept = stale.clerk("so-tai-chinh")
    sent = dept.send(report("701", to=(HOME_AFFAIRS,)))
    doc = sent["document_id"]
    expected = f"forwarded to truc-tw: failed at truc-tw for {HOME_AFFAIRS.organ_id}: {NOT_HERE}"

    (copy,) = wait_until(
        "the failure at truc-tw reaches the sender", lambda: (c := sent_of(dept, doc)) and c[0]["failed"] and c
    )
    assert copy["state"] == "done" and copy["to"] == "truc-tinh"
    assert [f["text"] for f in copy["failed"]] == [expected]
    (entry,) = copy["recipients"]
    assert (entry["at"], entry["state"], entry["node"], entry["forward"]) == (
        "truc-tinh",
        "forwarded",
        "truc-tw",
        "done",
    )
    assert (entry["further"]["at"], entry["further"]["state"]) == ("truc-tw", "failed")
    assert entry["further"]["node"] == "bo-tai-chinh"

    code, output = status_command(stale, doc)
    assert code == 1, output
    assert "NOT DELIVERED" in output and expected in output


def test_a_recall_refused_two_axes_away_reaches_the_sender_too(stale: Exchange) -> None:
    """A status is never answered: it is asked about like an unanswered document, and its failure shown."""
    dept, ministry = stale.clerk("so-tai-chinh"), stale.clerk("bo-tai-chinh")
    sent = dept.send(report("702", to=(MINISTRY, HOME_AFFAIRS)))
    doc = sent["document_id"]
    wait_until("the ministry receives it", lambda: ministry.received(doc))
    r = dept.answer(doc, SENDER.organ_id, 13, "Gửi nhầm số liệu")
    assert r.status_code == 202, r.text
    wait_until("the ministry has the recall", lambda: "13" in {h["code"] for h in ministry.statuses(doc)})

    def recall_failed() -> dict[str, Any] | None:
        recalls = [c for c in sent_of(dept, doc) if c.get("kind") == "status"]
        return recalls[0] if recalls and recalls[0]["failed"] else None

    recall = wait_until("the recall's failure for G09 reaches the sender", recall_failed)
    assert recall["status_code"] == "13" and recall["state"] == "done"
    expected = f"forwarded to truc-tw: failed at truc-tw for {HOME_AFFAIRS.organ_id}: {NOT_HERE}"
    assert [f["text"] for f in recall["failed"]] == [expected]
    # the ministry took it: that recipient is not failed, and its fate is final (delivered)
    states = {e["recipient"]: e["further"]["state"] for e in recall["recipients"]}
    assert states == {MINISTRY.organ_id: "done", HOME_AFFAIRS.organ_id: "failed"}

    code, output = status_command(stale, doc)
    assert code == 1, output
    assert expected in output
