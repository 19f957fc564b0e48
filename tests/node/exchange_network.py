"""A test network of real processes: two axes (national, provincial) and four agency nodes on loopback.

national axis (truc-tw) ── bo-tai-chinh (000.00.00.G12), bo-noi-vu (000.00.00.G09)
    └── provincial axis (truc-tinh) ── so-tai-chinh (000.01.41.H41), ubnd-tinh (000.00.00.H41)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from node.cli.demo import message_form
from node.network import AgencySpec, AxisSpec, Network, RunningNetwork, write_network
from node.samples import MINISTRY, SENDER, sample_monthly_report
from schemas import DocumentMessage, Organization

HOME_AFFAIRS = Organization(organ_id="000.00.00.G09", organ_name="Bộ Nội vụ")
PROVINCE = Organization(organ_id="000.00.00.H41", organ_name="Ủy ban nhân dân tỉnh Nghệ An")
MAX_AXIS_UPLOAD = 3_000_000  # the provincial axis's upload limit, small so the oversized-upload test is quick
AXES = (
    AxisSpec("truc-tw", trace_organ_id="000.00.00.G22"),
    AxisSpec("truc-tinh", trace_organ_id="000.00.01.H41", parent="truc-tw"),
)
AGENCIES = (
    AgencySpec("bo-tai-chinh", "truc-tw", ((MINISTRY.organ_id, MINISTRY.organ_name),)),
    AgencySpec("bo-noi-vu", "truc-tw", ((HOME_AFFAIRS.organ_id, HOME_AFFAIRS.organ_name),)),
    AgencySpec("so-tai-chinh", "truc-tinh", ((SENDER.organ_id, SENDER.organ_name),)),
    AgencySpec("ubnd-tinh", "truc-tinh", ((PROVINCE.organ_id, PROVINCE.organ_name),)),
)

# The smallest network: one axis, the department sending and the ministry receiving.
ONE_AXIS = (AxisSpec("truc", trace_organ_id="000.00.00.G22"),)
SENDER_AND_MINISTRY = (
    AgencySpec("so-tai-chinh", "truc", ((SENDER.organ_id, SENDER.organ_name),)),
    AgencySpec("bo-tai-chinh", "truc", ((MINISTRY.organ_id, MINISTRY.organ_name),)),
)


class Clerk:
    """A node's HTTP API with a token."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0)

    def send(self, message: DocumentMessage, key: str | None = None) -> dict[str, Any]:
        spec, files = message_form(message)
        headers = {"Idempotency-Key": key} if key else {}
        r = self.http.post(
            "/api/v1/messages", data={"message": json.dumps(spec, ensure_ascii=False)}, files=files, headers=headers
        )
        assert r.status_code == 202, r.text
        return dict(r.json())

    def received(self, document_id: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"direction": "in", "limit": 500}
        if kind:
            params["kind"] = kind
        r = self.http.get("/api/v1/messages", params=params)
        assert r.status_code == 200, r.text
        return [i for i in r.json()["items"] if document_id is None or i["document_id"] == document_id]

    def statuses(self, document_id: str) -> list[dict[str, Any]]:
        r = self.http.get("/api/v1/statuses", params={"document_id": document_id})
        assert r.status_code == 200, r.text
        return list(r.json()["history"])

    def answer(self, document_id: str, organisation: str, code: int, description: str = "") -> httpx.Response:
        body = {"document_id": document_id, "organisation": organisation, "code": code, "description": description}
        return self.http.post("/api/v1/statuses", json=body)

    def message(self, message_id: str) -> dict[str, Any]:
        r = self.http.get(f"/api/v1/messages/{message_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())


@dataclass
class Exchange:
    network: Network
    running: RunningNetwork
    clerks: dict[str, Clerk]

    def clerk(self, node_id: str) -> Clerk:
        return self.clerks[node_id]


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def report(
    number: str, *, sender: Organization = SENDER, to: tuple[Organization, ...] = (MINISTRY,)
) -> DocumentMessage:
    return sample_monthly_report(pdf_size=20_000, sender=sender, recipients=to, code_number=number)


def start_exchange(directory: Path, pki_url: str) -> Iterator[Exchange]:
    network = write_network(
        directory,
        AXES,
        AGENCIES,
        pki_base_url=pki_url,
        poll_interval=0.2,
        checkpoint_interval=1.0,
        timestamps=False,
        extra={"truc-tinh": {"max_envelope_bytes": MAX_AXIS_UPLOAD}},
    )
    yield from run_exchange(network)


def run_exchange(network: Network) -> Iterator[Exchange]:
    """Start every node of ``network``, yield it with a clerk per agency node, stop them all afterwards."""
    running = RunningNetwork(network)
    try:
        running.start()
        clerks = {n: Clerk(p.url, p.token) for n, p in network.nodes.items() if p.role == "agency"}
        yield Exchange(network, running, clerks)
    finally:
        running.stop_all()
