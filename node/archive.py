"""The archive (lưu trữ): every envelope sent, received or routed, indexed, retrievable and re-verifiable.

Each envelope copy is indexed when it is stored (:func:`archive_envelope`), with the verification report
and the revocation evidence (OCSP responses, CRLs) it used, each kept as a write-once object. Reads are
audit events: a search, a retrieval, a re-verification and an export each leave a leaf in the log, and an
actor reading much more than usual is flagged for the auditor.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from node.errors import NodeError
from node.events import record_event
from node.runtime import NodeRuntime
from schemas import Message
from signing.report import VerificationReport
from storage.archive import ArchiveEntry, ArchiveIndex, ArchivePage, ArchiveQuery, ArchiveRecord

if TYPE_CHECKING:
    from storage.bagit import BagFile

# An actor reading more entries than this within an hour is unusual (flagged in the audit log).
UNUSUAL_READS_PER_HOUR = 200
OCSP_TYPE, CRL_TYPE = "application/ocsp-response", "application/pkix-crl"

_PERIODS = (
    (re.compile(r"tháng\s+(\d{1,2})\s*[/-]\s*(\d{4})", re.IGNORECASE), lambda m: f"{m[2]}-{int(m[1]):02d}"),
    (re.compile(r"quý\s+(I{1,3}|IV|[1-4])\s*[/-]?\s*(?:năm\s+)?(\d{4})", re.IGNORECASE), None),
    (re.compile(r"6\s+tháng\s+(đầu|cuối)\s+năm\s+(\d{4})", re.IGNORECASE), None),
    (re.compile(r"năm\s+(\d{4})", re.IGNORECASE), lambda m: m[1]),
)
_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4}


def report_period(subject: str) -> str | None:
    """The reporting period a subject names (``tháng 10/2026`` → ``2026-10``, ``quý III/2026`` → ``2026-Q3``)."""
    for pattern, make in _PERIODS:
        m = pattern.search(subject)
        if m is None:
            continue
        if make is not None:
            return make(m)
        if pattern.pattern.startswith("quý"):
            quarter = _ROMAN.get(m[1].upper()) or int(m[1])
            return f"{m[2]}-Q{quarter}"
        return f"{m[2]}-H{1 if m[1].lower() == 'đầu' else 2}"
    return None


def archive_envelope(
    runtime: NodeRuntime,
    *,
    envelope_id: int,
    direction: str,
    message: Message,
    message_id: str,
    object_key: str,
    agency: str,
    verified: str = "",
    report_key: str | None = None,
    evidence_keys: tuple[str, ...] = (),
    updates_status: bool = True,
    session: Session | None = None,
) -> int:
    """Index one stored envelope copy; its archive entry id. With ``session``, inside its transaction.

    A status message also becomes its document's latest status unless ``updates_status`` is False: a status
    that did not verify, or whose sender is no party of the document, is archived but changes nothing.
    """
    from node.sending import describe

    fields = describe(message)
    record = ArchiveRecord(
        agency=agency,
        direction=direction,
        kind=message.kind,
        message_id=message_id,
        document_id=fields["document_id"],
        object_key=object_key,
        envelope_id=envelope_id,
        code=fields.get("code", ""),
        document_type=message.header.document_type.type_name if message.kind == "document" else "",
        subject=fields.get("subject", ""),
        sender=fields["sender"],
        recipients=tuple(fields["recipients"]),
        promulgation_date=message.header.promulgation_info.promulgation_date if message.kind == "document" else None,
        report_period=report_period(message.header.subject) if message.kind == "document" else None,
        status_code=message.header.status_code.code if message.kind == "status" else None,
        verified=verified,
        report_key=report_key,
        evidence_keys=evidence_keys,
    )
    index = ArchiveIndex(runtime.engine)
    if session is None:
        with runtime.engine.begin() as conn:
            return _index(index, conn, record, message, direction, updates_status)
    return _index(index, session.connection(), record, message, direction, updates_status)


def _index(
    index: ArchiveIndex, conn: Connection, record: ArchiveRecord, message: Message, direction: str, updates_status: bool
) -> int:
    entry_id = index.add_in(conn, [record])[0]
    if message.kind == "status" and updates_status:
        # in: an answer about a document we sent (it is archived for its sender); out: our own answer about a
        # document we received (archived for us, the answering organisation)
        h = message.header
        agency = h.response_for.organ_id if direction == "in" else h.from_.organ_id
        index.update_status_in(conn, h.response_for.document_id, agency, record.status_code or "")
    return entry_id


def store_evidence(runtime: NodeRuntime, report: VerificationReport) -> tuple[str, ...]:
    """The revocation data the verification that made ``report`` relied on, kept as objects (content-addressed:
    once each), for the envelope to be re-verified as of its receipt, offline.

    Exactly what that verification's path validations used, in this thread since it began: fetched then, taken
    from the store's memory or from a path validated earlier (a PDF signer's path from the path cache), or
    embedded in a PDF (its DSS); nothing else the store holds. An envelope signer's path answered from its
    cache names its data in the report, and that data is in the store's memory (it is part of the cache key).
    """
    trust = runtime.trust
    ocsps, crls = trust.used_revocation(since=report.verified_at)
    named = {r.der_sha256 for s in report.signatures for r in s.revocation}
    named -= {hashlib.sha256(der).hexdigest() for der in (*ocsps, *crls)}
    if named:
        remembered, fetched = trust.revocation_snapshot(), trust.fetched_revocation()
        ocsps += tuple(d for d in (*remembered[0], *fetched[0]) if hashlib.sha256(d).hexdigest() in named)
        crls += tuple(d for d in (*remembered[1], *fetched[1]) if hashlib.sha256(d).hexdigest() in named)
    snapshot = (tuple(dict.fromkeys(ocsps)), tuple(dict.fromkeys(crls)))
    # Envelopes from the same senders rely on the same data until it is fetched again: stored once per change.
    stored = runtime.stored_evidence
    if stored is None or stored[0] != snapshot:
        keys = [runtime.objects.put(der, document_class="evidence", content_type=OCSP_TYPE).key for der in snapshot[0]]
        keys += [runtime.objects.put(der, document_class="evidence", content_type=CRL_TYPE).key for der in snapshot[1]]
        stored = runtime.stored_evidence = (snapshot, tuple(keys))
    return stored[1]


# -- reads (each an audit event) -----------------------------------------------------------------------


class _ReadMeter:
    """Entries read per actor over the last hour, to flag unusual reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reads: dict[str, deque[tuple[float, int]]] = defaultdict(deque)

    def add(self, actor: str, count: int) -> bool:
        now = time.monotonic()
        with self._lock:
            window = self._reads[actor]
            window.append((now, count))
            while window and now - window[0][0] > 3600:
                window.popleft()
            return sum(c for _, c in window) > UNUSUAL_READS_PER_HOUR


_METER = _ReadMeter()


def _read_event(runtime: NodeRuntime, kind: str, actor: str, count: int, **fields: Any) -> None:
    unusual = _METER.add(actor, count)
    record_event(runtime, f"archive.{kind}", actor=actor, count=count, unusual=unusual, **fields)


def search(runtime: NodeRuntime, query: ArchiveQuery, *, actor: str) -> ArchivePage:
    page = ArchiveIndex(runtime.engine).search(query)
    filters = {k: v for k, v in query.__dict__.items() if v is not None and k not in ("cursor", "limit")}
    _read_event(runtime, "search", actor, len(page.items), filters=json.loads(json.dumps(filters, default=str)))
    return page


def get_entry(runtime: NodeRuntime, entry_id: int, *, actor: str) -> tuple[ArchiveEntry, bytes]:
    entry = ArchiveIndex(runtime.engine).get(entry_id)
    data = runtime.objects.get(entry.object_key)
    _read_event(runtime, "read", actor, 1, entry=entry_id, object=entry.object_key)
    return entry, data


@dataclass(frozen=True)
class ReVerification:
    entry: ArchiveEntry
    report: VerificationReport
    at: datetime | None
    original: dict[str, Any] | None


def reverify(runtime: NodeRuntime, entry_id: int, *, actor: str, at_original_time: bool = False) -> ReVerification:
    """Verify an archived envelope again: now (fetching fresh revocation data), or as of when it was archived,
    from the evidence stored with it, offline."""
    from signing.envelope import verify_envelope
    from signing.pdf import verify_pdf

    entry, data = get_entry(runtime, entry_id, actor=actor)
    trust = runtime.trust
    at = None
    if at_original_time:
        # From the evidence stored with the entry alone, fetching nothing, and hard-fail whatever the node's
        # policy: a certificate that names a revocation source and has no stored data is not passed.
        ocsps = [k for k in entry.evidence_keys if runtime.objects.stat(k).content_type == OCSP_TYPE]
        crls = [k for k in entry.evidence_keys if k not in ocsps]
        trust = runtime.trust.from_stored_revocation(
            [runtime.objects.get(k) for k in ocsps], [runtime.objects.get(k) for k in crls]
        )
        at = entry.archived_at
    result = verify_envelope(
        data, trust, at=at, name=f"archive-{entry_id}.edxml", verify_pdf=lambda n, d: verify_pdf(n, d, trust, at=at)
    )
    original = json.loads(runtime.objects.get(entry.report_key)) if entry.report_key else None
    record_event(
        runtime,
        "archive.verified",
        actor=actor,
        entry=entry_id,
        at=at.isoformat() if at else None,
        indication=result.report.indication.value,
    )
    return ReVerification(entry, result.report, at, original)


# -- export (BagIt, RFC 8493) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    path: str
    entries: int
    files: int
    proofs: int
    # what the export says of the axis's witness: "cosigned by truc at size 40, consistent with size 57", or
    # why there is no cosigned checkpoint in it
    witnessed: str = ""


class ExportError(NodeError, ValueError):
    """An export cannot be made as asked (nothing selected, more than allowed, the destination exists)."""


def _check_destination(target: Path) -> None:
    """Refuse a destination that cannot be written before anything is read (an export can take long)."""
    import os

    if target.exists():
        raise ExportError(f"{target} already exists: an export is written once, to a new path")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folders missing are made when the export is written
    if not folder.is_dir():
        raise ExportError(f"cannot write {target}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {target}: no permission to write in {folder}")


# Called as work goes on: what is being done, how much is done, out of how much.
Progress = Callable[[str, int, int], None]


def export(
    runtime: NodeRuntime,
    query: ArchiveQuery,
    target: str,
    *,
    actor: str,
    max_entries: int = 10_000,
    progress: Progress | None = None,
) -> ExportResult:
    """Write the selected entries as a BagIt package with their reports, evidence and audit proofs.

    ``data/envelopes/`` holds the exact bytes, ``data/reports/`` the verification reports, ``data/evidence/``
    the OCSP responses and CRLs, ``data/entries/`` the index fields of each entry, ``data/audit/`` the log's
    checkpoint, its verifier key and, for every event that names an exported object, the event with its
    inclusion proof against that checkpoint; then the latest checkpoint the axis cosigned, the axis's witness
    key and a consistency proof from it to the export's checkpoint (signed at export time, so never
    cosigned), or in ``data/audit/README.txt`` why there is none.

    Raises :class:`ExportError`, before anything is read or written, when the destination exists, when nothing
    matches, or when more than ``max_entries`` match (an export for a court or an archive must not be silently
    cut short).
    """
    from node.audit import inclusion, publish_checkpoint
    from storage.bagit import AUDIT_DIR, BagFile, write_bag

    _check_destination(Path(target))
    report = progress or (lambda _what, _done, _total: None)
    index = ArchiveIndex(runtime.engine)
    entries: list[ArchiveEntry] = []
    page_query = query
    while True:
        page = index.search(page_query)
        entries.extend(page.items)
        if page.next_cursor is None:
            break
        if len(entries) > max_entries:
            raise ExportError(
                f"more than {max_entries:,} entries match: narrow the selection or raise the maximum (--max-entries)"
            )
        page_query = ArchiveQuery(**{**query.__dict__, "cursor": page.next_cursor})
    if len(entries) > max_entries:
        raise ExportError(
            f"{len(entries):,} entries match, more than {max_entries:,}: narrow the selection or raise the maximum"
            " (--max-entries)"
        )
    if not entries:
        raise ExportError("no archive entry matches the selection: nothing to export")
    files: list[BagFile] = []
    wanted: set[str] = set()
    for done, entry in enumerate(entries, 1):
        files.append(BagFile(f"envelopes/{entry.id}.edxml", runtime.objects.get(entry.object_key)))
        wanted.add(entry.object_key)
        if entry.report_key:
            files.append(BagFile(f"reports/{entry.id}.json", runtime.objects.get(entry.report_key)))
            wanted.add(entry.report_key)
        for key in entry.evidence_keys:
            name = f"evidence/{key.rsplit('/', 1)[-1]}.der"
            if all(f.path != name for f in files):
                files.append(BagFile(name, runtime.objects.get(key)))
        files.append(BagFile(f"entries/{entry.id}.json", json.dumps(entry.as_json(), ensure_ascii=False).encode()))
        report("entries read", done, len(entries))
    filters = {k: v for k, v in query.__dict__.items() if v is not None and k not in ("cursor", "limit")}
    record_event(
        runtime,
        "archive.export",
        actor=actor,
        count=len(entries),
        unusual=_METER.add(actor, len(entries)),
        filters=json.loads(json.dumps(filters, default=str)),
        target=Path(target).name,
    )
    checkpoint = publish_checkpoint(runtime)
    proofs = []
    for first in range(0, checkpoint.size, 4096):
        for item in runtime.audit.entries(first, min(checkpoint.size, first + 4096)):
            event = item.event()
            if any(event.get(k) in wanted for k in ("object", "report")):
                proofs.append(inclusion(runtime, item.index, checkpoint.size))
        report("audit events searched for proofs", min(checkpoint.size, first + 4096), checkpoint.size)
    audit = [
        BagFile(f"{AUDIT_DIR}/checkpoint.txt", checkpoint.note.encode()),
        BagFile(f"{AUDIT_DIR}/log-key.txt", (runtime.log_signer.verifier.vkey() + "\n").encode()),
        BagFile(
            f"{AUDIT_DIR}/proofs.jsonl",
            "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in proofs).encode(),
        ),
    ]
    witness_files, witnessed = _witnessed(runtime, checkpoint.size)
    audit += witness_files
    path = write_bag(
        Path(target),
        [*files, *audit],
        info={
            "Source-Organization": ", ".join(runtime.organisations) or runtime.settings.node_id,
            "External-Description": f"Liên thông archive export of {len(entries)} envelope(s)",
            "External-Identifier": f"lienthong/{runtime.settings.node_id}/{checkpoint.size}",
            "Lienthong-Witness": witnessed,
        },
    )
    return ExportResult(str(path), len(entries), len(files) + len(audit), len(proofs), witnessed)


def _witnessed(runtime: NodeRuntime, size: int) -> tuple[list[BagFile], str]:
    """The axis's witness over the export's checkpoint of ``size``: the latest checkpoint it cosigned, its key,
    and the consistency proof from that one to the export's (signed just now, so not cosigned itself); with a
    README saying how to check them, or why there are none. Also the one line for bag-info.txt."""
    from node.audit import consistency, latest_cosigned, witness_verifier_key
    from storage.bagit import AUDIT_DIR, BagFile

    cosigned = latest_cosigned(runtime, at_most=size)
    if cosigned is None:
        if runtime.upstream is None:
            why = "no cosigned checkpoint: this node has no upstream axis, so no witness cosigns its log"
        else:
            why = (
                f"no cosigned checkpoint: the axis {runtime.upstream.node_id} has not cosigned a checkpoint of "
                "this log yet (it does every checkpoint_interval while the node runs)"
            )
        readme = _AUDIT_README + (
            f"\nThis export has {why}.\nIts events are vouched for only by checkpoint.txt, which the node itself"
            " signed at export time.\n"
        )
        return [BagFile(f"{AUDIT_DIR}/README.txt", readme.encode())], why
    keys = [key for key in (witness_verifier_key(runtime, w) for w in cosigned.witnesses) if key is not None]
    proof = consistency(runtime, cosigned.size, size)  # checked against both roots before it is written
    witnessed = (
        f"cosigned by {', '.join(cosigned.witnesses)} at size {cosigned.size}; "
        f"consistency proof to the export's checkpoint of size {size}"
    )
    readme = _AUDIT_README + (
        f"\nThis export's checkpoint (size {size}) extends the checkpoint {', '.join(cosigned.witnesses)} cosigned"
        f" at size {cosigned.size}: consistency.json proves it.\n"
    )
    files = [
        BagFile(f"{AUDIT_DIR}/cosigned-checkpoint.txt", cosigned.note.encode()),
        BagFile(f"{AUDIT_DIR}/witness-key.txt", "".join(key + "\n" for key in keys).encode()),
        BagFile(f"{AUDIT_DIR}/consistency.json", (json.dumps(proof) + "\n").encode()),
        BagFile(f"{AUDIT_DIR}/README.txt", readme.encode()),
    ]
    return files, witnessed


_AUDIT_README = """\
The audit trail of this export (Liên thông; see docs/archive.md, "BagIt export", and docs/audit-log.md).

checkpoint.txt            a checkpoint of the node's audit log, signed by the node at export time (C2SP signed note)
log-key.txt               the log's verifier key: compare it with the key the node's operator published
proofs.jsonl              each event naming an exported object, with its inclusion proof against checkpoint.txt

When the axis had cosigned a checkpoint of the log before the export:
cosigned-checkpoint.txt   the latest checkpoint the axis cosigned (the node's signature, then the axis's
                          tlog-cosignature/v1 line)
witness-key.txt           the axis's witness verifier key: compare it with the key the axis published
consistency.json          the RFC 9162 consistency proof from cosigned-checkpoint.txt to checkpoint.txt: the
                          export's checkpoint extends, unchanged, the history the axis witnessed

Check the signatures with the published keys, never with the copies here, and take both roots from the
verified checkpoints, not from consistency.json.
"""
