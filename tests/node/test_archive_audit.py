"""The archive and the audit trail on a node, as archivists and auditors use them (``lienthong archive/audit``).

One axis and two agencies in process (revocation hard-fail, so stored evidence matters); a few reports go
from the department to the ministry; then the ministry's archive is searched, read, re-verified (now and as
of archiving, offline from stored evidence), exported as BagIt with audit proofs, and its audit log is
verified, tampered with, and verified again.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from node.cli import app
from node.config import load_settings
from node.network import Network, write_network
from node.receiving import receive_envelope
from node.routing import accept_envelope
from node.runtime import NodeRuntime
from node.samples import MINISTRY
from node.sending import send_document
from storage.bagit import verify_bag
from storage.exchange import EnvelopeRow
from storage.merkle import verify_inclusion
from tests.node.exchange_network import ONE_AXIS, SENDER_AND_MINISTRY, report

runner = CliRunner()


@dataclass
class Archive:
    network: Network
    ministry_config: Path
    documents: list[str]
    pki_dir: Path


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    from signing.devpki import serve_dev_pki

    directory = tmp_path_factory.mktemp("archive")
    with serve_dev_pki(directory / "pki", port=0) as responders:
        network = write_network(
            directory,
            ONE_AXIS,
            SENDER_AND_MINISTRY,
            pki_base_url=responders.url,
            timestamps=False,
            revocation="hard-fail",
        )
        rt = {n: NodeRuntime(load_settings(p.config)) for n, p in network.nodes.items()}
        documents = []
        try:
            for number in ("401", "402", "403"):
                sent = send_document(rt["so-tai-chinh"], report(number))
                with rt["so-tai-chinh"].session() as s:
                    row = s.get(EnvelopeRow, sent.envelope_id)
                    assert row is not None
                    data = rt["so-tai-chinh"].objects.get(row.object_key)
                axis = rt["truc"]
                accept_envelope(axis, data, message_id=sent.message_id, from_node=axis.peer("so-tai-chinh"))  # type: ignore[arg-type]
                with axis.session() as s:
                    key = s.scalars(
                        select(EnvelopeRow.object_key).where(EnvelopeRow.message_id == sent.message_id)
                    ).one()
                outcome = receive_envelope(
                    rt["bo-tai-chinh"], axis.objects.get(key), message_id=sent.message_id, recipient=MINISTRY.organ_id
                )
                assert outcome.indication == "TOTAL_PASSED"
                documents.append(sent.document_id)
        finally:
            for runtime in rt.values():
                runtime.close()
    # the responders are gone from here on: whatever needs revocation data must use what was stored
    return Archive(network, network.node("bo-tai-chinh").config, documents, directory / "pki")


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def search(archive: Archive, *args: str) -> dict[str, object]:
    code, output = cli("archive", "search", "--config", str(archive.ministry_config), "--json", *args)
    assert code == 0, output
    return dict(json.loads(output.strip().splitlines()[-1]))


def test_search_finds_reports_by_words_without_accents_period_and_code(archive: Archive) -> None:
    found = search(archive, "--text", "bao cao ngan sach", "--direction", "in")
    items = found["items"]
    assert isinstance(items, list)
    assert sorted(i["document_id"] for i in items) == sorted(archive.documents)
    assert all(i["verified"] == "TOTAL_PASSED" for i in items)
    assert all(i["report_period"] == "2026-10" for i in items)
    assert len(search(archive, "--period", "2026-10", "--direction", "in")["items"]) == 3  # type: ignore[arg-type]
    assert len(search(archive, "--period", "2025-10")["items"]) == 0  # type: ignore[arg-type]
    one = search(archive, "--code", "402/BC-STC", "--direction", "in")["items"]
    assert [i["document_id"] for i in one] == [archive.documents[1]]  # type: ignore[union-attr]
    page = search(archive, "--direction", "in", "--kind", "document", "--limit", "2")
    assert len(page["items"]) == 2 and page["next_cursor"]  # type: ignore[arg-type]
    rest = search(
        archive, "--direction", "in", "--kind", "document", "--limit", "2", "--cursor", str(page["next_cursor"])
    )
    assert len(rest["items"]) == 1  # type: ignore[arg-type]
    code, output = cli("archive", "search", "--config", str(archive.ministry_config), "--period", "tháng mười")
    assert code == 1 and "period" in output


def test_a_date_in_the_wrong_format_is_named_with_the_form_to_use(archive: Archive) -> None:
    config = str(archive.ministry_config)
    code, output = cli("archive", "search", "--config", config, "--from", "16/11/2026")
    assert code == 1
    assert "--from '16/11/2026' is not a date" in output and "YYYY-MM-DD, e.g. 2026-11-16" in output
    code, output = cli("archive", "search", "--config", config, "--to", "2026-13-01")
    assert code == 1 and "--to '2026-13-01' is not a date" in output


def test_search_in_80_columns_shows_whole_document_ids_codes_and_subjects(archive: Archive) -> None:
    # the table cut DocumentIds and codes ("000.01.4…", "245/BC-S…") and subjects at 60 characters with no "…"
    result = runner.invoke(
        app, ["archive", "search", "--config", str(archive.ministry_config), "--direction", "in"], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Archive: 3 match(es), newest first:"
    subject = "Báo cáo tình hình thực hiện dự toán ngân sách nhà nước tháng 10/2026"
    assert len(subject) > 60
    for document_id in archive.documents:
        assert f"  {document_id}" in lines
        code = document_id.rsplit(",", 1)[1]
        assert f"  {code}  {subject}" in lines
    assert "…" not in result.output
    headers = [line for line in lines if line.startswith("id ")]
    assert len(headers) == 3
    assert all("dated 2026-11-16  in document from 000.01.41.H41  ✔ TOTAL_PASSED" in h for h in headers)


def test_search_shows_archiving_times_in_vietnam_time_and_the_senders_text_inert(
    archive: Archive, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from storage.archive import ArchiveIndex, ArchiveRecord

    config = _copy_node(archive, tmp_path)
    document_id = "000.01.41.H41,2026/11/16,12345/QĐ-UBND-VPTTHCC"
    runtime = NodeRuntime(load_settings(config))
    try:
        ArchiveIndex(runtime.engine).add(
            ArchiveRecord(
                agency=MINISTRY.organ_id,
                direction="in",
                kind="document",
                message_id="cd" * 32,
                document_id=document_id,
                object_key="sha256/" + "0" * 64,
                code="12345/QĐ-UBND-VPTTHCC",
                subject="Quyết định [bold red]ĐÃ DUYỆT[/] \u202etháng 10",
                sender="000.01.41.H41",
                verified="TOTAL_PASSED",
                archived_at=datetime(2026, 11, 23, 14, 6, 50, tzinfo=UTC),
            )
        )
    finally:
        runtime.close()
    result = runner.invoke(
        app, ["archive", "search", "--config", str(config), "--document-id", document_id], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].startswith("id ") and "archived 2026-11-23 21:06:50 ICT  in document from 000.01.41.H41" in lines[1]
    assert lines[2] == f"  {document_id}"
    assert lines[3] == "  12345/QĐ-UBND-VPTTHCC  Quyết định [bold red]ĐÃ DUYỆT[/] \\u202etháng 10"


def test_a_search_without_matches_says_so_with_the_filters_given(archive: Archive) -> None:
    config = str(archive.ministry_config)
    code, output = cli("archive", "search", "--config", config, "--code", "999/BC-STC", "--text", "ngân sách")
    assert code == 0, output
    assert output.strip() == "No archive entry matches --text 'ngân sách' --code 999/BC-STC."


def entry_id(archive: Archive, document_id: str) -> int:
    items = search(archive, "--document-id", document_id, "--direction", "in")["items"]
    assert isinstance(items, list) and len(items) == 1
    return int(items[0]["id"])


def test_get_returns_the_exact_stored_bytes(archive: Archive, tmp_path: Path) -> None:
    import hashlib

    ident = entry_id(archive, archive.documents[0])
    out = tmp_path / "copy.edxml"
    code, output = cli("archive", "get", str(ident), "--config", str(archive.ministry_config), "-o", str(out))
    assert code == 0, output
    runtime = NodeRuntime(load_settings(archive.ministry_config))
    try:
        with runtime.session() as s:
            row = s.scalars(
                select(EnvelopeRow).where(
                    EnvelopeRow.direction == "in", EnvelopeRow.document_id == archive.documents[0]
                )
            ).one()
        assert hashlib.sha256(out.read_bytes()).hexdigest() == row.sha256
    finally:
        runtime.close()
    assert cli("archive", "get", "999999", "--config", str(archive.ministry_config))[0] == 1


def test_get_to_a_path_that_cannot_be_written_says_so(archive: Archive, tmp_path: Path) -> None:
    ident = entry_id(archive, archive.documents[0])
    target = tmp_path / "missing-folder" / "copy.edxml"
    code, output = cli("archive", "get", str(ident), "--config", str(archive.ministry_config), "-o", str(target))
    assert code == 1, output
    assert f"cannot write {target}: No such file or directory" in output


def test_reverification_as_of_archiving_uses_the_stored_evidence_offline(archive: Archive) -> None:
    ident = entry_id(archive, archive.documents[1])
    code, output = cli(
        "archive", "verify", str(ident), "--config", str(archive.ministry_config), "--at-original-time", "--json"
    )
    assert code == 0, output
    report = json.loads(output.strip().splitlines()[-1])
    assert len(report["signatures"]) >= 2  # the envelope and the PDF's seal
    assert {s["indication"] for s in report["signatures"]} == {"TOTAL_PASSED"}
    # now, with the OCSP responder gone and hard-fail: revocation cannot be checked, so not valid
    code, _ = cli("archive", "verify", str(ident), "--config", str(archive.ministry_config))
    assert code != 0


def test_reverification_shows_how_the_entry_verified_when_archived(archive: Archive) -> None:
    ident = entry_id(archive, archive.documents[2])
    config = str(archive.ministry_config)
    code, output = cli("archive", "verify", str(ident), "--config", config, "--at-original-time")
    assert code == 0, output
    assert "When archived (" in output and "TOTAL_PASSED; this time: TOTAL_PASSED (unchanged)" in output
    code, output = cli("archive", "verify", str(ident), "--config", config)  # revocation cannot be checked now
    assert code != 0
    assert "When archived (" in output and "CHANGED since archiving" in output


def test_export_is_a_valid_bag_with_proofs_that_verify(archive: Archive, tmp_path: Path) -> None:
    target = tmp_path / "export.zip"
    code, output = cli(
        "archive", "export", str(target), "--config", str(archive.ministry_config), "--text", "ngan sach"
    )
    assert code == 0, output
    assert verify_bag(target) == []
    with zipfile.ZipFile(target) as z:
        names = z.namelist()
        proofs = [
            json.loads(line) for line in z.read(next(n for n in names if n.endswith("audit/proofs.jsonl"))).splitlines()
        ]
        checkpoint = z.read(next(n for n in names if n.endswith("audit/checkpoint.txt"))).decode()
    assert sum(n.endswith(".edxml") for n in names) >= 3
    assert proofs, "the events that stored the exported envelopes come with inclusion proofs"
    root = base64.b64decode(checkpoint.splitlines()[2])
    for p in proofs:
        verify_inclusion(
            base64.b64decode(p["leaf_hash"]), p["index"], p["size"], [base64.b64decode(h) for h in p["proof"]], root
        )


def test_export_takes_the_search_filters_and_shows_its_progress(archive: Archive, tmp_path: Path) -> None:
    target = tmp_path / "one"
    code, output = cli(
        "archive", "export", str(target), "--config", str(archive.ministry_config), "--code", "402 / bc-stc",
        "--direction", "in", "--from", "2020-01-01", "--to", "2099-12-31",
    )  # fmt: skip
    assert code == 0, output
    assert verify_bag(target) == []
    assert [p.name for p in (target / "data" / "envelopes").iterdir()] == [
        f"{entry_id(archive, archive.documents[1])}.edxml"
    ]
    assert "entries read: 1/1" in output and "audit events searched for proofs" in output


def test_export_refuses_clearly_what_it_cannot_do_and_writes_nothing(archive: Archive, tmp_path: Path) -> None:
    config = str(archive.ministry_config)
    existing = tmp_path / "existing"
    existing.mkdir()
    code, output = cli("archive", "export", str(existing), "--config", config, "--text", "ngan sach")
    assert code == 1 and "already exists" in output and "Traceback" not in output
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    code, output = cli("archive", "export", str(not_a_folder / "x.zip"), "--config", config)
    assert code == 1 and f"{not_a_folder} is not a directory" in output
    code, output = cli("archive", "export", str(tmp_path / "none.zip"), "--config", config, "--text", "khong co gi")
    assert code == 1 and "no archive entry matches" in output
    # more entries than allowed: refused, not silently cut short
    code, output = cli("archive", "export", str(tmp_path / "cut.zip"), "--config", config, "--max-entries", "2")
    assert code == 1 and "more than 2" in output and "--max-entries" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing", "file"]


def test_every_archive_read_is_an_audit_event(archive: Archive) -> None:
    search(archive, "--text", "ngan sach")
    code, output = cli(
        "audit", "events", "--config", str(archive.ministry_config), "--type", "archive.search", "--json"
    )
    assert code == 0, output
    events = json.loads(output.strip().splitlines()[-1])["events"]
    assert events and events[0]["event"]["type"] == "archive.search"


def test_audit_verify_is_clean_then_names_the_first_tampered_entry(archive: Archive, tmp_path: Path) -> None:
    config = _copy_node(archive, tmp_path)  # work on a copy: other tests read the original
    copy_dir = config.parent
    code, output = cli("audit", "checkpoint", "--config", str(config))
    assert code == 0, output
    code, output = cli("audit", "verify", "--config", str(config), "--json")
    assert code == 0, output
    clean = json.loads(output.strip().splitlines()[-1])
    assert clean["ok"] and clean["size"] > 5 and clean["objects"] > 3

    db = sqlite3.connect(copy_dir / "node.db")
    rows = db.execute("SELECT idx, data FROM audit_entries ORDER BY idx").fetchall()
    target, data = next((i, data) for i, data in rows if b"message.received" in data)
    db.execute(
        "UPDATE audit_entries SET data = ? WHERE idx = ?", (data.replace(b"TOTAL_PASSED", b"TOTAL_FAILED"), target)
    )
    db.commit()
    db.close()
    code, output = cli("audit", "verify", "--config", str(config), "--json")
    assert code == 1
    assert json.loads(output.strip().splitlines()[-1])["first_bad_index"] == target


def test_a_replaced_archived_object_is_named_by_audit_verify(archive: Archive, tmp_path: Path) -> None:
    import os

    config = _copy_node(archive, tmp_path)
    copy_dir = config.parent
    runtime = NodeRuntime(load_settings(config))
    try:
        with runtime.session() as s:
            key = s.scalars(select(EnvelopeRow.object_key).where(EnvelopeRow.direction == "in")).first()
        assert key is not None
        events = [e for e in runtime.audit.entries(0, runtime.audit.size()) if e.event().get("object") == key]
        first = events[0].index
    finally:
        runtime.close()
    path = next((copy_dir / "objects").rglob(key.rsplit("/", 1)[-1]))
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes().replace(b"edXML", b"EDXML", 1))
    code, output = cli("audit", "verify", "--config", str(config), "--json")
    assert code == 1, output
    result = json.loads(output.strip().splitlines()[-1])
    assert result["first_bad_index"] == first
    assert key in " ".join(result["problems"])


def test_db_current_says_the_schema_is_the_newest(archive: Archive) -> None:
    from storage.migrate import head

    code, output = cli("db", "current", "--config", str(archive.ministry_config))
    assert code == 0, output
    assert f"database revision: {head()}" in output


def _copy_node(archive: Archive, tmp_path: Path, node: str = "bo-tai-chinh") -> Path:
    import shutil

    node_dir = archive.network.node(node).config.parent
    copy_dir = tmp_path / ("copy" if node == "bo-tai-chinh" else f"copy-{node}")
    shutil.copytree(node_dir, copy_dir)
    config = copy_dir / "node.yaml"
    config.write_text(config.read_text().replace(str(node_dir), str(copy_dir)))
    return config


@pytest.mark.parametrize("tampering", ["delete", "insert", "reorder", "delete-object"])
def test_audit_verify_names_the_first_bad_index_for_every_kind_of_tampering(
    archive: Archive, tmp_path: Path, tampering: str
) -> None:
    config = _copy_node(archive, tmp_path)
    db = sqlite3.connect(config.parent / "node.db")
    rows = db.execute("SELECT idx, data FROM audit_entries ORDER BY idx").fetchall()
    target = next(i for i, data in rows if b"message.received" in data)
    if tampering == "delete":
        db.execute("DELETE FROM audit_entries WHERE idx = ?", (target,))
    elif tampering == "insert":  # an extra event after the last one, its tree hashes not updated
        db.execute(
            "INSERT INTO audit_entries (idx, data, appended_at) VALUES (?, ?, '2026-11-23 00:00:00')",
            (len(rows), b'{"type":"forged"}'),
        )
        target = len(rows)
    elif tampering == "reorder":
        (_, a), (_, b) = rows[target], rows[target + 1]
        db.execute("UPDATE audit_entries SET data = ? WHERE idx = ?", (b, target))
        db.execute("UPDATE audit_entries SET data = ? WHERE idx = ?", (a, target + 1))
    else:
        key = json.loads(rows[target][1])["object"]
        path = next((config.parent / "objects").rglob(key.rsplit("/", 1)[-1]))
        path.unlink()
    db.commit()
    db.close()
    code, output = cli("audit", "verify", "--config", str(config), "--json")
    assert code == 1, output
    result = json.loads(output.strip().splitlines()[-1])
    assert result["first_bad_index"] == target, result["problems"]


def test_a_rewritten_checkpoint_row_is_named_by_its_id(archive: Archive, tmp_path: Path) -> None:
    config = _copy_node(archive, tmp_path)
    assert cli("audit", "checkpoint", "--config", str(config))[0] == 0
    db = sqlite3.connect(config.parent / "node.db")
    (last,) = db.execute("SELECT max(id) FROM audit_checkpoints").fetchone()
    db.execute("UPDATE audit_checkpoints SET size = size - 1 WHERE id = ?", (last,))
    db.commit()
    db.close()
    code, output = cli("audit", "verify", "--config", str(config))
    assert code == 1
    assert f"first bad checkpoint #{last}" in output and "None" not in output


def test_audit_verify_checks_against_the_published_key(archive: Archive, tmp_path: Path) -> None:
    from storage.checkpoint import generate_log_key

    config = _copy_node(archive, tmp_path)
    result = runner.invoke(app, ["audit", "checkpoint", "--config", str(config)])
    published = result.stderr.split("log verifier key: ", 1)[1].strip()
    code, output = cli("audit", "verify", "--config", str(config), "--log-key", published)
    assert code == 0, output
    # a key of another node's log, or not a key at all: said so, exit 2
    code, output = cli(
        "audit", "verify", "--config", str(config), "--log-key", "lienthong/truc" + published[published.index("+") :]
    )
    assert code == 2 and "does not match" in output
    axis_key = generate_log_key("lienthong/truc").verifier.vkey()
    code, output = cli("audit", "verify", "--config", str(config), "--log-key", axis_key)
    assert code == 2 and "for the log 'lienthong/truc'; this node's log is 'lienthong/bo-tai-chinh'" in output
    # the right name, another key: what an operator who replaced the node's key would show
    other = generate_log_key(published.split("+", 1)[0]).verifier.vkey()
    code, output = cli("audit", "verify", "--config", str(config), "--log-key", other)
    assert code == 1
    assert "is not the key given" in output and "not signed by the published key" in output


def test_the_cosigned_checkpoint_and_its_keys_are_printed_for_offline_checks(archive: Archive, tmp_path: Path) -> None:
    from storage.checkpoint import NoteVerifier, verify_checkpoint, verify_cosignature

    config = _copy_node(archive, tmp_path)
    code, output = cli("audit", "checkpoint", "--cosigned", "--config", str(config))
    assert code == 1
    assert "no checkpoint of this log has been cosigned yet" in output
    size = _cosign_now(config, archive.network.node("truc").config)

    result = runner.invoke(app, ["audit", "checkpoint", "--cosigned", "--config", str(config)])
    assert result.exit_code == 0, result.output
    keys = dict(line.split(": ", 1) for line in result.stderr.splitlines())
    log_key = NoteVerifier.from_vkey(keys["log verifier key"])
    witness_key = NoteVerifier.from_vkey(keys["witness verifier key of truc"])
    checkpoint, _ = verify_checkpoint(result.stdout, log_key)
    assert checkpoint.size == size
    assert verify_cosignature(result.stdout, witness_key) > 0


def _cosign_now(config: Path, axis_config: Path) -> int:
    """What the witness worker does over HTTP: the axis cosigns the node's checkpoint, the node keeps the line.
    The size cosigned."""
    from node.audit import publish_checkpoint
    from storage.exchange import CosignatureRow

    node, axis = NodeRuntime(load_settings(config)), NodeRuntime(load_settings(axis_config))
    try:
        stored = publish_checkpoint(node)
        vkey = axis.log_verifier_key("bo-tai-chinh")
        assert vkey is not None
        line = axis.witness.cosign(stored.note, [], vkey)
        with node.session() as s:
            s.add(CosignatureRow(checkpoint_size=stored.size, witness="truc", line=line))
        return stored.size
    finally:
        node.close()
        axis.close()


def _bag_audit_files(target: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(target) as z:
        return {n.rsplit("/data/audit/", 1)[1]: z.read(n) for n in z.namelist() if "/data/audit/" in n} | {
            "bag-info.txt": z.read(next(n for n in z.namelist() if n.endswith("/bag-info.txt")))
        }


def test_an_export_carries_the_checkpoint_the_axis_cosigned_and_a_consistency_proof_to_its_own(
    archive: Archive, tmp_path: Path
) -> None:
    # the export's checkpoint is signed at export time, which the axis never cosigned: a court could not check
    # the axis's witness over it
    from storage.checkpoint import COSIGNATURE_V1, NoteVerifier, verify_checkpoint, verify_cosignature
    from storage.errors import MerkleProofError
    from storage.merkle import verify_consistency

    config = _copy_node(archive, tmp_path)
    axis_config = _copy_node(archive, tmp_path, "truc")  # the shared axis keeps its own witness state
    cosigned_size = _cosign_now(config, axis_config)
    target = tmp_path / "export.zip"
    code, output = cli("archive", "export", str(target), "--config", str(config), "--text", "ngan sach")
    assert code == 0, output
    assert f"axis witness: cosigned by truc at size {cosigned_size}; consistency proof" in output
    assert verify_bag(target) == []
    audit = _bag_audit_files(target)

    # the keys as the node's operator and the axis publish them, not the bag's copies
    axis = NodeRuntime(load_settings(axis_config))
    try:
        published_log_key = axis.log_verifier_key("bo-tai-chinh")
        published_witness_key = NoteVerifier(
            "lienthong-witness/truc", COSIGNATURE_V1, axis.node_key.public_key_bytes
        ).vkey()
    finally:
        axis.close()
    assert published_log_key is not None
    assert audit["witness-key.txt"].decode() == published_witness_key + "\n"
    log_key = NoteVerifier.from_vkey(published_log_key)
    cosigned, _ = verify_checkpoint(audit["cosigned-checkpoint.txt"], log_key)
    assert verify_cosignature(audit["cosigned-checkpoint.txt"], NoteVerifier.from_vkey(published_witness_key)) > 0
    exported, _ = verify_checkpoint(audit["checkpoint.txt"], log_key)
    assert cosigned.size == cosigned_size < exported.size  # the export itself is an event after the cosigning
    proof = json.loads(audit["consistency.json"])
    assert (proof["size1"], proof["size2"]) == (cosigned.size, exported.size)
    hashes = [base64.b64decode(h) for h in proof["proof"]]
    verify_consistency(cosigned.size, exported.size, hashes, cosigned.root_hash, exported.root_hash)
    # a tampered proof, or one checked against another history, fails
    tampered = [bytes([hashes[0][0] ^ 1]) + hashes[0][1:], *hashes[1:]]
    with pytest.raises(MerkleProofError):
        verify_consistency(cosigned.size, exported.size, tampered, cosigned.root_hash, exported.root_hash)
    with pytest.raises(MerkleProofError):
        verify_consistency(cosigned.size, exported.size, hashes[:-1], cosigned.root_hash, exported.root_hash)
    with pytest.raises(MerkleProofError):
        verify_consistency(cosigned.size, exported.size, hashes, b"\x01" * 32, exported.root_hash)
    info = audit["bag-info.txt"].decode()
    assert f"Lienthong-Witness: cosigned by truc at size {cosigned.size}" in info
    assert "consistency.json" in audit["README.txt"].decode()


def test_an_export_without_a_cosigned_checkpoint_says_why_instead_of_failing(archive: Archive, tmp_path: Path) -> None:
    # the ministry's node has not been witnessed yet
    target = tmp_path / "export.zip"
    code, output = cli("archive", "export", str(target), "--config", str(_copy_node(archive, tmp_path)))
    assert code == 0, output
    assert "axis witness: no cosigned checkpoint: the axis truc has not cosigned" in output
    audit = _bag_audit_files(target)
    assert {"cosigned-checkpoint.txt", "witness-key.txt", "consistency.json"}.isdisjoint(audit)
    assert "This export has no cosigned checkpoint: the axis truc has not cosigned" in audit["README.txt"].decode()
    assert "Lienthong-Witness: no cosigned checkpoint" in audit["bag-info.txt"].decode()
    assert verify_bag(target) == []
    # the axis has no upstream axis: nobody cosigns its log
    target = tmp_path / "axis.zip"
    code, output = cli("archive", "export", str(target), "--config", str(_copy_node(archive, tmp_path, "truc")))
    assert code == 0, output
    assert (
        "this node has no upstream axis, so no witness cosigns its log"
        in _bag_audit_files(target)["README.txt"].decode()
    )


class _AxisInProcess:
    """The axis's two witnessing endpoints in process, as node/api.py answers them (with the tlog-witness
    ``old_size``): ``lose`` drops the next answer after the axis committed, ``garble`` flips a signature bit."""

    def __init__(self, axis: NodeRuntime, node_id: str) -> None:
        self.axis, self.node_id, self.lose, self.garble = axis, node_id, False, False

    def witness(self, checkpoint: str, proof: list[bytes], old_size: int | None = None) -> str:
        vkey = self.axis.log_verifier_key(self.node_id)
        assert vkey is not None
        line = self.axis.witness.cosign(checkpoint, proof, vkey, old_size=old_size)
        if self.lose:
            self.lose = False
            raise ConnectionError("the answer was lost on the way back")
        if self.garble:
            name, sig = line.rstrip("\n").rsplit(" ", 1)
            raw = bytearray(base64.b64decode(sig))
            raw[-1] ^= 1
            line = f"{name} {base64.b64encode(bytes(raw)).decode()}\n"
        return line

    def checkpoint(self, first: int | None) -> dict[str, object]:
        from node.audit import publish_checkpoint

        latest = publish_checkpoint(self.axis)
        proof = self.axis.audit.consistency_proof(first, latest.size) if first and first <= latest.size else []
        return {"checkpoint": latest.note, "proof": [base64.b64encode(p).decode() for p in proof]}


def test_witnessing_recovers_from_a_lost_cosignature_and_never_keeps_a_line_that_does_not_verify(
    archive: Archive, tmp_path: Path
) -> None:
    from node.audit import latest_cosigned, witness_verifier_key
    from node.events import record_event
    from node.witnessing import witness_step
    from storage.checkpoint import NoteVerifier, verify_checkpoint, verify_cosignature
    from storage.errors import WitnessRefusal

    node = NodeRuntime(load_settings(_copy_node(archive, tmp_path)))
    axis = NodeRuntime(load_settings(_copy_node(archive, tmp_path, "truc")))
    try:
        peer = _AxisInProcess(axis, "bo-tai-chinh")
        # The axis cosigns and commits, but its answer is lost: the node still believes nothing was cosigned.
        peer.lose = True
        with pytest.raises(ConnectionError):
            witness_step(node, peer)  # type: ignore[arg-type]
        lost = axis.witness.last_seen("lienthong/bo-tai-chinh")
        assert lost is not None and latest_cosigned(node) is None
        # The log grows; the next round is cosigned from the size the axis holds, not refused as a fork.
        record_event(node, "test.grown", n=1)
        witness_step(node, peer)  # type: ignore[arg-type]
        cosigned = latest_cosigned(node)
        assert cosigned is not None and cosigned.size > lost[0]
        vkey = witness_verifier_key(node, "truc")
        assert vkey is not None
        assert verify_cosignature(cosigned.note, NoteVerifier.from_vkey(vkey)) > 0
        verify_checkpoint(cosigned.note, node.log_signer.verifier)
        # A line that does not verify under the axis's witness key is refused, not kept and served.
        record_event(node, "test.grown", n=2)
        peer.garble = True
        with pytest.raises(WitnessRefusal, match="does not verify"):
            witness_step(node, peer)  # type: ignore[arg-type]
        after = latest_cosigned(node)
        assert after is not None and after.size == cosigned.size
    finally:
        node.close()
        axis.close()


def test_a_lost_cosignature_is_recovered_over_http_as_a_conflict_not_judged_a_fork(
    archive: Archive, tmp_path: Path
) -> None:
    """The axis's HTTP endpoint takes the node's ``old_size`` and answers 409 witness-conflict with its own size,
    which the node retries from; without it, the proof from the old size was judged a fork at every round."""
    import httpx
    from fastapi.testclient import TestClient
    from sqlalchemy import delete

    from node.api import create_app
    from node.audit import latest_cosigned
    from node.events import record_event
    from node.witnessing import PeerClient, witness_step
    from storage.exchange import CosignatureRow

    node = NodeRuntime(load_settings(_copy_node(archive, tmp_path)))
    axis = NodeRuntime(load_settings(_copy_node(archive, tmp_path, "truc")))
    try:
        upstream = node.upstream
        assert upstream is not None
        with TestClient(create_app(axis, start_workers=False)) as http:
            transport = httpx.MockTransport(lambda request: http.send(request))
            peer = PeerClient(
                "http://testserver", node.node_key, upstream.public_key, peer_id=upstream.node_id, transport=transport
            )
            witness_step(node, peer)
            first = latest_cosigned(node)
            assert first is not None
            with node.session() as s:  # the axis's answer never arrived: the node does not know it was cosigned
                s.execute(delete(CosignatureRow))
            record_event(node, "test.grown", n=1)
            witness_step(node, peer)
        again = latest_cosigned(node)
        assert again is not None and again.size > first.size
        refused = [e.event() for e in axis.audit.entries(0, axis.audit.size())]
        assert not [e for e in refused if e["type"] == "witness.refused"], "a lost answer is no fork"
    finally:
        node.close()
        axis.close()
