"""``lienthong demo``: a small exchange network on this machine, every node a real process on loopback.

Two axes (the national axis and Nghệ An's provincial axis, its child) and five agency nodes: the
province's finance department sends its signed monthly report to the Ministry of Finance (across both axes),
the ministry verifies it, answers 01 automatically and then 03…06 by hand; a commune reports to its district
and the district to the province. Each step is printed with the verification report and status history;
``--json`` ends with one JSON line ``{"sent", "delivered", "verified", "statuses"}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from node.network import AgencySpec, AxisSpec, Network, RunningNetwork, write_network
from node.samples import MINISTRY, SENDER, sample_monthly_report
from schemas import DocumentMessage, Organization

NATIONAL = AxisSpec("truc-quoc-gia", trace_organ_id="000.00.00.G22")
PROVINCIAL = AxisSpec("truc-nghe-an", trace_organ_id="000.00.00.H41", parent="truc-quoc-gia")
PROVINCE = Organization(organ_id="000.00.00.H41", organ_name="Ủy ban nhân dân tỉnh Nghệ An")
DISTRICT = Organization(organ_id="000.00.05.H41", organ_name="Ủy ban nhân dân huyện Nghi Lộc")
COMMUNE = Organization(organ_id="000.01.05.H41", organ_name="Ủy ban nhân dân xã Nghi Phong")
AGENCIES = (
    AgencySpec("so-tai-chinh-nghe-an", "truc-nghe-an", ((SENDER.organ_id, SENDER.organ_name),)),
    AgencySpec("bo-tai-chinh", "truc-quoc-gia", ((MINISTRY.organ_id, MINISTRY.organ_name),)),
    AgencySpec("ubnd-tinh-nghe-an", "truc-nghe-an", ((PROVINCE.organ_id, PROVINCE.organ_name),)),
    AgencySpec("ubnd-huyen-nghi-loc", "truc-nghe-an", ((DISTRICT.organ_id, DISTRICT.organ_name),)),
    AgencySpec("ubnd-xa-nghi-phong", "truc-nghe-an", ((COMMUNE.organ_id, COMMUNE.organ_name),)),
)
WAIT = 90.0


class NodeApi:
    """The clerk's view of one node: its HTTP API with an admin token."""

    def __init__(self, network: Network, node_id: str) -> None:
        plan = network.node(node_id)
        self.node_id = node_id
        self.http = httpx.Client(base_url=plan.url, headers={"Authorization": f"Bearer {plan.token}"}, timeout=60.0)

    def send(self, message: DocumentMessage, key: str) -> Any:
        spec, files = message_form(message)
        response = self.http.post(
            "/api/v1/messages",
            data={"message": json.dumps(spec, ensure_ascii=False)},
            files=files,
            headers={"Idempotency-Key": key},
        )
        return _ok(response)

    def received(self, document_id: str) -> list[dict[str, Any]]:
        items = _ok(self.http.get("/api/v1/messages", params={"direction": "in", "kind": "document", "limit": 500}))
        return [i for i in items["items"] if i["document_id"] == document_id]

    def message(self, message_id: str) -> Any:
        return _ok(self.http.get(f"/api/v1/messages/{message_id}"))

    def statuses(self, document_id: str) -> list[dict[str, Any]]:
        return list(_ok(self.http.get("/api/v1/statuses", params={"document_id": document_id}))["history"])

    def answer(self, document_id: str, organisation: str, code: int, description: str) -> Any:
        body = {"document_id": document_id, "organisation": organisation, "code": code, "description": description}
        return _ok(self.http.post("/api/v1/statuses", json=body))

    def close(self) -> None:
        self.http.close()


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} {response.text}")
    return response.json()


def message_form(message: DocumentMessage) -> tuple[dict[str, Any], list[tuple[str, tuple[str, bytes, str]]]]:
    """The spec JSON and the file parts of ``POST /api/v1/messages`` for ``message``."""
    spec: dict[str, Any] = message.header.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    spec["business"] = message.business.model_dump(mode="json", exclude_defaults=True)
    spec["attachments"] = [
        {"file": a.name, "description": a.description, "content_type": a.content_type} for a in message.attachments
    ]
    files = [("files", (a.name, a.data, a.content_type)) for a in message.attachments]
    return spec, files


def wait_for(what: str, check: Any, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


DEMO_MARKER = ".lienthong-demo"


def fresh_workdir(workdir: Path) -> None:
    """Empty ``workdir`` for a new run: the previous demo's network (its databases hold the old tokens and
    messages) is removed, but a directory the demo did not write is never touched."""
    import shutil

    if workdir.is_dir() and any(workdir.iterdir()):
        node_ids = [NATIONAL.node_id, PROVINCIAL.node_id, *(a.node_id for a in AGENCIES)]
        ours = (workdir / DEMO_MARKER).is_file() or (  # or written by a demo before the marker existed
            (workdir / "pki").is_dir() and all((workdir / n / "node.yaml").is_file() for n in node_ids)
        )
        if not ours:
            raise typer.BadParameter(
                f"{workdir} holds files the demo did not write; give --workdir a new or empty directory",
                param_hint="--workdir",
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / DEMO_MARKER).write_text("written by `lienthong demo`: the next run removes this directory\n")


def demo(
    workdir: Annotated[
        Path,
        typer.Option(help="Where the demo writes its network (configs, keys, data); a previous demo's is replaced."),
    ] = Path("var/demo"),
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of results.")] = False,
) -> None:
    """Start two axes and five agency nodes, exchange signed reports and statuses, print every step."""
    from node._private.report_render import render_report
    from signing.devpki import serve_dev_pki
    from signing.pdf import PdfSigningKey, PdfSignOptions, SignatureRole, sign_pdf
    from signing.report import VerificationReport

    console = Console(stderr=as_json)
    started = time.perf_counter()

    def step(text: str) -> None:
        console.print(f"[bold cyan]{time.perf_counter() - started:6.2f}s[/] {text}", highlight=False)

    console.rule("[bold]Liên thông demo: signed reports over the document-exchange axis")
    fresh_workdir(workdir)
    sent = delivered = verified = 0
    statuses: list[dict[str, Any]] = []
    with serve_dev_pki(workdir / "pki", port=0) as responders:
        network = write_network(
            workdir, (NATIONAL, PROVINCIAL), AGENCIES, pki_base_url=responders.url, revocation="hard-fail"
        )
        step(f"Development PKI (NOT FOR PRODUCTION) with OCSP, CRL and TSA at {responders.url}")
        for plan in network.nodes.values():
            step(f"  {plan.role:6} {plan.node_id:22} {plan.url}  {' '.join(plan.organisations)}")
        with RunningNetwork(network) as running:
            running.start()
            step(f"{len(network.nodes)} nodes started, each its own process (logs in {workdir})")
            apis = {n: NodeApi(network, n) for n in network.nodes if network.node(n).role == "agency"}
            try:
                # 1. the department's monthly report to the ministry, across two axes
                pki_dir = workdir / "pki"
                from signing.devpki import DevPki

                pki = DevPki.load(pki_dir)
                report = sample_monthly_report(pdf_size=100_000)
                director = PdfSigningKey(pki.signing_key(pki.organ(SENDER.organ_id).signer.label))
                pdf = sign_pdf(report.attachments[0].data, director, PdfSignOptions(role=SignatureRole.SIGNER))
                report = report.model_copy(
                    update={"attachments": (report.attachments[0].model_copy(update={"data": pdf}),)}
                )
                step("The director signs the report PDF; the clerk sends it (the node adds the seal and signs)")
                dept, ministry = apis["so-tai-chinh-nghe-an"], apis["bo-tai-chinh"]
                receipt = dept.send(report, key="bao-cao-thang-10")
                sent += 1
                doc_id = receipt["document_id"]
                step(f"Queued {doc_id} → {', '.join(receipt['recipients'])} (message {receipt['message_id'][:16]}…)")
                got = wait_for("the ministry to receive the report", lambda: ministry.received(doc_id))
                delivered += 1
                copy = ministry.message(got[0]["message_id"])["copies"][0]
                verified += copy["verified"] == "TOTAL_PASSED"
                step(f"{MINISTRY.organ_name} received it via truc-nghe-an → truc-quoc-gia and verified it:")
                console.print(render_report(VerificationReport.model_validate(copy["report"])))
                wait_for("status 01 at the sender", lambda: _codes(dept.statuses(doc_id)) >= {"01"})
                step("The department sees status 01 (đã đến) from the ministry, signed and verified")
                for code, text in (
                    (3, "Vào sổ công văn đến"),
                    (4, "Giao Vụ Ngân sách"),
                    (5, "Đang tổng hợp"),
                    (6, "Đã tổng hợp"),
                ):
                    ministry.answer(doc_id, MINISTRY.organ_id, code, text)
                history = wait_for(
                    "statuses 03–06 at the sender",
                    lambda: (h := dept.statuses(doc_id)) and _codes(h) >= {"01", "03", "04", "05", "06"} and h,
                )
                step("The ministry registers, assigns, processes and completes it; the department's history:")
                console.print(_history_table(doc_id, history))
                statuses += [{"document_id": doc_id, "reporter": h["reporter"], "code": h["code"]} for h in history]

                # 2. up the chain: commune → district → province
                for sender, recipient, number in ((COMMUNE, DISTRICT, "12"), (DISTRICT, PROVINCE, "31")):
                    chain_report = sample_monthly_report(
                        pdf_size=50_000, sender=sender, recipients=(recipient,), code_number=number
                    )
                    sender_api = apis[network.node_serving(sender.organ_id).node_id]
                    recipient_api = apis[network.node_serving(recipient.organ_id).node_id]
                    receipt = sender_api.send(chain_report, key=f"chain-{number}")
                    sent += 1
                    chain_id = receipt["document_id"]
                    got = wait_for(
                        f"{recipient.organ_name} to receive", lambda i=chain_id, a=recipient_api: a.received(i)
                    )
                    delivered += 1
                    copy = recipient_api.message(got[0]["message_id"])["copies"][0]
                    verified += copy["verified"] == "TOTAL_PASSED"
                    recipient_api.answer(chain_id, recipient.organ_id, 3, "Đã tiếp nhận")
                    history = wait_for(
                        "statuses 01 and 03",
                        lambda i=chain_id, a=sender_api: (h := a.statuses(i)) and _codes(h) >= {"01", "03"} and h,
                    )
                    step(
                        f"{sender.organ_name} → {recipient.organ_name}: {chain_id} delivered, "
                        f"{copy['verified']}, statuses {' '.join(sorted(_codes(history)))}"
                    )
                    statuses += [
                        {"document_id": chain_id, "reporter": h["reporter"], "code": h["code"]} for h in history
                    ]
            finally:
                for api in apis.values():
                    api.close()
    ok = sent == delivered == verified
    step(f"Sent {sent}, delivered {delivered}, verified {verified}. Everything is under {workdir}.")
    if as_json:
        sys.stdout.write(
            json.dumps(
                {"sent": sent, "delivered": delivered, "verified": verified, "statuses": statuses}, ensure_ascii=False
            )
            + "\n"
        )
    if not ok:
        raise typer.Exit(1)


def _codes(history: list[dict[str, Any]]) -> set[str]:
    return {h["code"] for h in history}


def _history_table(document_id: str, history: list[dict[str, Any]]) -> Table:
    from node.cli.node_cmds import status_label

    table = Table(title=f"Statuses of {document_id}", title_justify="left")
    for column in ("when (ICT)", "organisation", "status", "description"):
        table.add_column(column)
    for h in history:
        table.add_row(h["stated_at"][:19].replace("T", " "), h["reporter"], status_label(h["code"]), h["description"])
    return table
