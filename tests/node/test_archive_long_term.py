"""An archived report re-verified years later: offline, its signers' certificates revoked or expired since.

One B-T envelope whose PDF carries the signer's signature (B-B) and the organisation's seal (B-T) is received
while everything is valid (revocation hard-fail); then both certificates are revoked, and the dev PKI's
responders are stopped. ``archive verify --at-original-time`` must still pass every signature as of the
receipt, from the evidence stored with the entry alone; plain ``archive verify`` says what holds now.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from asn1crypto import ocsp as asn1_ocsp
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
from signing._private.certpath import check_certificate
from signing._private.pdf_paths import _PdfPathCache
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


# --- envelopes from the same signers: a path from the path cache, fetchers renewed between validations -------


@dataclass
class Series:
    config: Path
    entries: tuple[int, ...]
    organisation_serial: int
    signer_serial: int
    unrelated: bytes  # an OCSP response the ministry's store remembered, about another organisation's certificate
    cached_paths: int  # PDF signer paths answered from the path cache while the fourth envelope was received


def _receive(axis: NodeRuntime, ministry: NodeRuntime, sender: NodeRuntime, number: str) -> int:
    sent = send_document(sender, report(number))
    with sender.session() as s:
        row = s.get(EnvelopeRow, sent.envelope_id)
        assert row is not None
        data = sender.objects.get(row.object_key)
    accept_envelope(axis, data, message_id=sent.message_id, from_node=axis.peer("so-tai-chinh"))  # type: ignore[arg-type]
    with axis.session() as s:
        key = s.scalars(select(EnvelopeRow.object_key).where(EnvelopeRow.message_id == sent.message_id)).one()
    outcome = receive_envelope(ministry, axis.objects.get(key), message_id=sent.message_id, recipient=MINISTRY.organ_id)
    assert outcome.indication == "TOTAL_PASSED", outcome
    entries = ArchiveIndex(ministry.engine).search(ArchiveQuery(direction="in", kind="document")).items
    return max(e.id for e in entries)


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Series:
    """Four documents, each with the signer's and the organisation's B-B signatures (no TSA: no signing time to
    validate at, so a path validated for one document can be reused for the next): the first with the fetchers
    renewed for every validation, the others more than that lifetime later, the fourth's paths from the path
    cache."""
    directory = tmp_path_factory.mktemp("series")
    with serve_dev_pki(directory / "pki", port=0) as responders:
        network = write_network(
            directory, ONE_AXIS, SENDER_AND_MINISTRY, pki_base_url=responders.url, revocation="hard-fail"
        )
        pki = DevPki.load(directory / "pki")
        organ = pki.organ(SENDER.organ_id)
        sender_config = network.node("so-tai-chinh").config
        config = yaml.safe_load(sender_config.read_text(encoding="utf-8"))
        config.pop("timestamp_url", None)
        config["organisations"][0]["signer"] = {
            "kind": "pkcs12",
            "key": str(organ.signer.p12_path),
            "passphrase_file": str(pki.passphrase_path),
        }
        sender_config.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
        rt = {n: NodeRuntime(load_settings(p.config)) for n, p in network.nodes.items()}
        try:
            sender, axis, ministry = rt["so-tai-chinh"], rt["truc"], rt["bo-tai-chinh"]
            # The store remembers a response about another organisation's certificate: no envelope's evidence
            other = pki.trust_store()
            check_certificate(other, pki.organ(MINISTRY.organ_id).organisation.certificate(), [], None)
            (unrelated,) = other.revocation_snapshot()[0]
            ministry.trust.remember_revocation([unrelated], [])
            # The first with the fetchers renewed for every validation (a lifetime of 0 s): what one validation
            # fetched (the signer's OCSP response) the next one's fetchers no longer hold, nor does the store.
            lifetime = ministry.trust.revocation_cache_seconds
            ministry.trust.revocation_cache_seconds = 0.0
            first = _receive(axis, ministry, sender, "611")
            ministry.trust.revocation_cache_seconds = lifetime
            # more than that lifetime later, two more: the store learns the sender's responses (its memory is part
            # of the path cache key); then the fourth, whose paths come from the path cache
            second = _receive(axis, ministry, sender, "612")
            third = _receive(axis, ministry, sender, "613")
            hits: list[object] = []
            original_get = _PdfPathCache.get

            def counting_get(self: _PdfPathCache, key: Hashable, now: dt.datetime) -> object:
                found = original_get(self, key, now)
                if found is not None:
                    hits.append(found)
                return found

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(_PdfPathCache, "get", counting_get)
                fourth = _receive(axis, ministry, sender, "614")
        finally:
            for runtime in rt.values():
                runtime.close()
    # the responders are gone from here on
    return Series(
        network.node("bo-tai-chinh").config,
        (first, second, third, fourth),
        organ.organisation.serial,
        organ.signer.serial,
        unrelated,
        len(hits),
    )


def _evidence(runtime: NodeRuntime, entry_id: int) -> tuple[list[bytes], list[bytes]]:
    entry = ArchiveIndex(runtime.engine).get(entry_id)
    ocsps = [k for k in entry.evidence_keys if runtime.objects.stat(k).content_type == OCSP_TYPE]
    crls = [k for k in entry.evidence_keys if k not in ocsps]
    return [runtime.objects.get(k) for k in ocsps], [runtime.objects.get(k) for k in crls]


def test_each_envelopes_evidence_holds_what_its_cached_paths_and_renewed_fetchers_used(series: Series) -> None:
    # For the first document, the signer's OCSP response was fetched by fetchers renewed before the seal's
    # validation: it was not kept, and the signer's signature was INDETERMINATE offline as of its receipt. The
    # fourth document's paths came from the path cache. Every signature of every envelope passes from its
    # evidence alone.
    assert series.cached_paths >= 1
    assert len(set(series.entries)) == 4
    runtime = NodeRuntime(load_settings(series.config))
    try:
        for entry_id in series.entries:
            then = reverify(runtime, entry_id, actor="test", at_original_time=True)
            signatures = {s.id.rsplit("#", 1)[-1]: s for s in then.report.signatures}
            assert set(signatures) == {"envelope", "Signer1", "Organisation2"}, signatures
            assert {s.indication.value for s in signatures.values()} == {"TOTAL_PASSED"}, then.report
    finally:
        runtime.close()


def test_the_evidence_stored_is_what_the_verification_used_and_nothing_else(series: Series) -> None:
    runtime = NodeRuntime(load_settings(series.config))
    try:
        for entry_id in series.entries:
            ocsps, crls = _evidence(runtime, entry_id)
            assert series.unrelated not in ocsps
            # responses about the certificates validated, the sender's organisation (envelope, seal) and signer, only
            # (the envelope's and the seal's validations may each have relied on a response of its own)
            about = set(
                single["cert_id"]["serial_number"].native
                for der in ocsps
                for single in asn1_ocsp.OCSPResponse.load(der).basic_ocsp_response["tbs_response_data"]["responses"]
            )
            assert about == {series.organisation_serial, series.signer_serial}
            assert len(crls) == len(set(crls))
    finally:
        runtime.close()
