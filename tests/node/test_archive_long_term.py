"""An archived report re-verified years later: offline, its signers' certificates revoked or expired since.

One B-T envelope whose PDF carries the signer's signature (B-B) and the organisation's seal (B-T) is received
while everything is valid (revocation hard-fail); then both certificates are revoked, and the dev PKI's
responders are stopped. ``archive verify --at-original-time`` must still pass every signature as of the
receipt, from the evidence stored with the entry alone; plain ``archive verify`` says what holds now.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from node.archive import OCSP_TYPE, reverify
from node.cli import app
from node.config import load_settings
from node.network import write_network
from node.receiving import receive_envelope
from node.routing import accept_envelope
from node.runtime import NodeRuntime
from node.samples import MINISTRY
from node.sending import send_document
from signing.devpki import DevPki, serve_dev_pki
from signing.envelope import verify_envelope
from signing.pdf import verify_pdf
from storage.archive import ArchiveIndex, ArchiveQuery
from storage.exchange import EnvelopeRow
from tests.node.exchange_network import ONE_AXIS, SENDER, SENDER_AND_MINISTRY, report

runner = CliRunner()


@dataclass
class Received:
    config: Path
    entry: int
    archived_at: dt.datetime
    pki: DevPki
    now_online: dict[str, tuple[str, str | None]]  # signature id → (indication, sub-indication), after revocation


@pytest.fixture(scope="module")
def received(tmp_path_factory: pytest.TempPathFactory) -> Received:
    directory = tmp_path_factory.mktemp("long-term")
    with serve_dev_pki(directory / "pki", port=0) as responders:
        network = write_network(
            directory, ONE_AXIS, SENDER_AND_MINISTRY, pki_base_url=responders.url, revocation="hard-fail"
        )
        pki = DevPki.load(directory / "pki")
        sender_config = network.node("so-tai-chinh").config
        config = yaml.safe_load(sender_config.read_text(encoding="utf-8"))
        config["organisations"][0]["signer"] = {  # the PDF's personal signature too, with its own certificate
            "kind": "pkcs12",
            "key": str(pki.organ(SENDER.organ_id).signer.p12_path),
            "passphrase_file": str(pki.passphrase_path),
        }
        sender_config.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
        rt = {n: NodeRuntime(load_settings(p.config)) for n, p in network.nodes.items()}
        try:
            sender, axis, ministry = rt["so-tai-chinh"], rt["truc"], rt["bo-tai-chinh"]
            sent = send_document(sender, report("601"))
            with sender.session() as s:
                row = s.get(EnvelopeRow, sent.envelope_id)
                assert row is not None
                data = sender.objects.get(row.object_key)
            accept_envelope(axis, data, message_id=sent.message_id, from_node=axis.peer("so-tai-chinh"))  # type: ignore[arg-type]
            with axis.session() as s:
                key = s.scalars(select(EnvelopeRow.object_key).where(EnvelopeRow.message_id == sent.message_id)).one()
            outcome = receive_envelope(
                ministry, axis.objects.get(key), message_id=sent.message_id, recipient=MINISTRY.organ_id
            )
            assert outcome.indication == "TOTAL_PASSED"
            entry = ArchiveIndex(ministry.engine).search(ArchiveQuery(direction="in", kind="document")).items[0]
        finally:
            for runtime in rt.values():
                runtime.close()
        # after the receipt: both of the sender's certificates are revoked (the next whole second)
        organ = pki.organ(SENDER.organ_id)
        pki = pki.revoke(organ.organisation.label).revoke(organ.signer.label)
        ministry = NodeRuntime(load_settings(network.node("bo-tai-chinh").config))
        try:
            now = reverify(ministry, entry.id, actor="test")  # now, the responders still answering
        finally:
            ministry.close()
        now_online = {
            s.id: (s.indication.value, s.sub_indication and s.sub_indication.value) for s in now.report.signatures
        }
    # the responders are gone from here on
    return Received(network.node("bo-tai-chinh").config, entry.id, entry.archived_at, pki, now_online)


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_as_of_its_receipt_every_signature_passes_from_the_stored_evidence_offline(received: Received) -> None:
    # The signer's PDF signature has its own certificate, whose OCSP response pyHanko fetched itself: it was not
    # kept as evidence, so this was INDETERMINATE offline however valid the signature was when it arrived.
    args = ("archive", "verify", str(received.entry), "--config", str(received.config), "--at-original-time")
    code, output = cli(*args, "--json")
    assert code == 0, output
    report = json.loads(output.strip().splitlines()[-1])
    signatures = {s["id"].rsplit("#", 1)[-1]: s for s in report["signatures"]}
    assert set(signatures) == {"envelope", "Signer1", "Organisation2"}
    assert {s["indication"] for s in signatures.values()} == {"TOTAL_PASSED"}
    assert signatures["envelope"]["level"] == "B-T"
    for s in signatures.values():
        assert dt.datetime.fromisoformat(s["validation_time"]) == received.archived_at
        assert s["validation_time_source"] == "requested"
    code, output = cli(*args)
    assert code == 0, output
    assert "when it was archived, offline from the" in output and "stored with it" in output
    assert "TOTAL_PASSED; this time: TOTAL_PASSED (unchanged)" in output


def test_now_it_says_what_holds_today_beside_what_held_at_receipt(received: Received) -> None:
    # online after the revocation: the signer's B-B signature has no timestamp to date it, so it is revoked
    # now; the envelope and the seal are dated by their timestamps, before the revocation
    assert received.now_online["envelope"] == ("TOTAL_PASSED", None)
    by_role = {k.rsplit("#", 1)[-1]: v for k, v in received.now_online.items()}
    assert by_role["Signer1"] == ("TOTAL_FAILED", "REVOKED")
    assert by_role["Organisation2"] == ("TOTAL_PASSED", None)
    # offline: nothing can be checked now, and the output says so beside the indication at archiving
    code, output = cli("archive", "verify", str(received.entry), "--config", str(received.config))
    assert code == 2, output
    assert "verified now" in output and "REVOCATION_UNKNOWN" in output
    assert "TOTAL_PASSED; this time: INDETERMINATE" in output and "CHANGED since archiving" in output


def test_after_the_signers_certificate_expired_only_the_original_time_still_passes(received: Received) -> None:
    # The stored evidence at a moment past the certificates' validity, as plain verification would see it then
    # (the node's TSA certificate has expired by then too, so its timestamp no longer dates the signature).
    expired = received.pki.organ(SENDER.organ_id).organisation.not_after + dt.timedelta(days=1)
    runtime = NodeRuntime(load_settings(received.config))
    try:
        entry = ArchiveIndex(runtime.engine).get(received.entry)
        ocsps = [k for k in entry.evidence_keys if runtime.objects.stat(k).content_type == OCSP_TYPE]
        trust = runtime.trust.from_stored_revocation(
            [runtime.objects.get(k) for k in ocsps],
            [runtime.objects.get(k) for k in entry.evidence_keys if k not in ocsps],
        )
        data = runtime.objects.get(entry.object_key)
        later = verify_envelope(data, trust, at=expired, verify_pdf=lambda n, d: verify_pdf(n, d, trust, at=expired))
        # nothing passes then: the certificates have expired and the stored data is long stale
        assert all(s.indication.value != "TOTAL_PASSED" for s in later.report.signatures)
        then = reverify(runtime, received.entry, actor="test", at_original_time=True)
        assert then.report.indication.value == "TOTAL_PASSED"
    finally:
        runtime.close()


def test_the_original_time_insists_on_stored_evidence_even_on_a_soft_fail_node(
    received: Received, tmp_path: Path
) -> None:
    # A soft-fail node accepts a certificate whose status cannot be fetched; as of archiving, offline, that
    # would pass a signature with no evidence at all. The ministry's own answer (archived "out") has none.
    config = yaml.safe_load(received.config.read_text(encoding="utf-8"))
    config["trust"]["revocation"] = "soft-fail"
    soft = tmp_path / "node.yaml"
    soft.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    runtime = NodeRuntime(load_settings(soft))
    try:
        answer = ArchiveIndex(runtime.engine).search(ArchiveQuery(direction="out", kind="status")).items[0]
        assert answer.evidence_keys == ()
        result = reverify(runtime, answer.id, actor="test", at_original_time=True)
    finally:
        runtime.close()
    assert result.report.indication.value == "INDETERMINATE"
    assert {s.sub_indication.value for s in result.report.signatures if s.sub_indication} == {"REVOCATION_UNKNOWN"}
