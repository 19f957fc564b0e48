"""BagIt packages (RFC 8493, version 1.0) for handing archive selections to a historical archive (gói BagIt).

:func:`write_bag` writes a bag as a directory or as a ``.zip`` holding one top-level directory (RFC 8493
§4.2); every file is first written beside the target and renamed into place, so a target is either
absent or complete. :func:`verify_bag` checks a bag, ours or anyone's, and lists every problem found.

Layout written::

    <bag>/bagit.txt               BagIt-Version 1.0, UTF-8
    <bag>/bag-info.txt            Bagging-Date, Payload-Oxum, Bag-Software-Agent, then the caller's labels
    <bag>/manifest-sha256.txt     one line per payload file: SHA-256, two spaces, data/<path>
    <bag>/tagmanifest-sha256.txt  SHA-256 of the three tag files above
    <bag>/data/...                the payload, paths as given
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from storage._private.archive_bag_paths import check_distinct, encode_manifest_path, safe_payload_path
from storage._private.archive_bag_verify import verify_bag
from storage.errors import BagError

__all__ = ["AUDIT_DIR", "BagFile", "verify_bag", "write_bag"]

BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
SOFTWARE_AGENT = "Lien thong (storage.bagit)"
# Where the node puts the audit proofs of an export (events, inclusion proofs, checkpoints): ``data/audit/``.
AUDIT_DIR = "audit"
_RESERVED_LABELS = {"payload-oxum", "bagging-date", "bag-software-agent"}


@dataclass(frozen=True)
class BagFile:
    """One payload file: its path under ``data/`` (``/``-separated) and its bytes."""

    path: str
    data: bytes


def write_bag(
    target: str | os.PathLike[str],
    files: Iterable[BagFile],
    *,
    info: Mapping[str, str],
    bagging_date: date | None = None,
) -> Path:
    """Write ``files`` as a BagIt 1.0 bag at ``target`` (a directory, or a ``.zip`` file); the path written.

    ``info`` adds ``bag-info.txt`` labels (Source-Organization, External-Description, External-Identifier…);
    Bagging-Date (today, UTC, unless given), Payload-Oxum and Bag-Software-Agent are written by this function.
    Raises :class:`BagError` for an unsafe or duplicate payload path, a bad label, or an existing target.
    """
    target = Path(target)
    if target.exists():
        raise BagError(f"{target} already exists: a bag is written once, to a new path")
    items = [(safe_payload_path(item.path), bytes(item.data)) for item in files]
    check_distinct(path for path, _ in items)
    payload = dict(items)
    tags = _tag_files(payload, info, bagging_date or datetime.now(UTC).date())
    if target.suffix.lower() == ".zip":
        _write_zip(target, payload, tags)
    else:
        _write_directory(target, payload, tags)
    return target


def _bag_info(payload: Mapping[str, bytes], info: Mapping[str, str], bagging_date: date) -> bytes:
    lines = [
        f"Bagging-Date: {bagging_date.isoformat()}",
        f"Payload-Oxum: {sum(len(d) for d in payload.values())}.{len(payload)}",
        f"Bag-Software-Agent: {SOFTWARE_AGENT}",
    ]
    for label, value in info.items():
        if not label or label != label.strip() or ":" in label or any(c in label for c in "\r\n"):
            raise BagError(f"bag-info label {label!r} must be non-empty, without ':', line breaks or edge blanks")
        if label.lower() in _RESERVED_LABELS:
            raise BagError(f"bag-info label {label!r} is computed by write_bag; do not give it")
        # A value on several lines continues on lines that start with blanks (RFC 8493 §2.2.2).
        folded = "\n  ".join(value.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
        lines.append(f"{label}: {folded}")
    return ("\n".join(lines) + "\n").encode()


def _manifest(entries: Mapping[str, bytes]) -> bytes:
    lines = [f"{hashlib.sha256(data).hexdigest()}  {encode_manifest_path(path)}\n" for path, data in entries.items()]
    return "".join(sorted(lines, key=lambda line: line[66:])).encode()


def _tag_files(payload: Mapping[str, bytes], info: Mapping[str, str], bagging_date: date) -> dict[str, bytes]:
    tags = {
        "bagit.txt": BAGIT_TXT,
        "bag-info.txt": _bag_info(payload, info, bagging_date),
        "manifest-sha256.txt": _manifest({f"data/{p}": d for p, d in payload.items()}),
    }
    tags["tagmanifest-sha256.txt"] = _manifest(tags)
    return tags


def _write_directory(target: Path, payload: Mapping[str, bytes], tags: Mapping[str, bytes]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for path, data in payload.items():
            destination = staging / "data" / path
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(data)
        for name, data in tags.items():
            (staging / name).write_bytes(data)
        staging.rename(target)  # fails rather than merging if the target appeared meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_zip(target: Path, payload: Mapping[str, bytes], tags: Mapping[str, bytes]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    root = target.stem
    descriptor, staging_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    staging = Path(staging_name)
    try:
        with os.fdopen(descriptor, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in tags.items():
                archive.writestr(f"{root}/{name}", data)
            for path, data in sorted(payload.items()):
                archive.writestr(f"{root}/data/{path}", data)
        os.link(staging, target)  # create-only: never replaces a file that appeared meanwhile
    except FileExistsError as exc:
        raise BagError(f"{target} already exists: a bag is written once, to a new path") from exc
    finally:
        staging.unlink(missing_ok=True)
