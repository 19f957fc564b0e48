"""Checking a BagIt bag (RFC 8493), as a directory or a ``.zip``: every problem found, in words."""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from storage._private.archive_bag_paths import decode_manifest_path

_MANIFEST = re.compile(r"(tag)?manifest-([a-z0-9]+)\.txt")
_ALGORITHMS = {"sha256": 64, "sha512": 128, "sha384": 96, "sha224": 56, "sha1": 40, "md5": 32}


def _read_directory(root: Path) -> tuple[dict[str, bytes], list[str]]:
    files: dict[str, bytes] = {}
    problems: list[str] = []
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            full = Path(folder) / name
            relative = full.relative_to(root).as_posix()
            if full.is_symlink():
                problems.append(f"{relative}: a symbolic link (not followed)")
            elif full.is_file():
                files[relative] = full.read_bytes()
        dirs[:] = [d for d in dirs if not (Path(folder) / d).is_symlink()]
    return files, problems


def _read_zip(path: Path) -> tuple[dict[str, bytes], list[str]]:
    files: dict[str, bytes] = {}
    problems: list[str] = []
    with zipfile.ZipFile(path) as archive:
        names = [info for info in archive.infolist() if not info.is_dir()]
        tops = {info.filename.split("/", 1)[0] for info in names}
        if len(tops) != 1:
            return {}, [f"the zip must hold exactly one top-level folder, not {sorted(tops)}"]
        for info in names:
            parts = PurePosixPath(info.filename).parts
            if info.filename.startswith("/") or ".." in parts or "\\" in info.filename:
                problems.append(f"{info.filename}: unsafe path in the zip")
                continue
            files["/".join(parts[1:])] = archive.read(info)
    return files, problems


def _parse_tag_lines(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    label = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and label is not None:
            out[label] += "\n" + line.strip()
        elif ":" in line:
            label, value = line.split(":", 1)
            out[label.strip()] = value.strip()
    return out


def _check_manifest(name: str, algorithm: str, text: str, files: Mapping[str, bytes], problems: list[str]) -> set[str]:
    listed: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != _ALGORITHMS[algorithm]:
            problems.append(f"{name} line {number}: not '<{algorithm}>  <path>'")
            continue
        digest, raw_path = parts[0].lower(), decode_manifest_path(parts[1].lstrip("*"))
        path = PurePosixPath(raw_path)
        if path.is_absolute() or ".." in path.parts:
            problems.append(f"{name} line {number}: path {raw_path!r} leaves the bag")
            continue
        listed.add(raw_path)
        if raw_path not in files:
            problems.append(f"{raw_path}: listed in {name} but missing")
        elif hashlib.new(algorithm, files[raw_path]).hexdigest() != digest:
            problems.append(f"{raw_path}: {algorithm} differs from {name} (changed or damaged)")
    return listed


def verify_bag(path: str | os.PathLike[str]) -> list[str]:
    """Every problem of the bag at ``path`` (a directory or ``.zip``); an empty list when it is valid.

    Checks ``bagit.txt``; that there is a payload manifest; every line of every manifest and tag manifest
    (file present, checksum equal); that no payload file is missing from a manifest; and Payload-Oxum.
    """
    path = Path(path)
    if path.is_dir():
        files, problems = _read_directory(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        files, problems = _read_zip(path)
    else:
        return [f"{path}: neither a bag directory nor a zip file"]
    declaration = files.get("bagit.txt")
    if declaration is None:
        return [*problems, "bagit.txt is missing: not a bag"]
    fields = _parse_tag_lines(declaration.decode("utf-8", "replace"))
    if fields.get("BagIt-Version") not in ("1.0", "0.97"):
        problems.append(f"bagit.txt: BagIt-Version {fields.get('BagIt-Version')!r}, expected 1.0")
    payload = {name for name in files if name.startswith("data/")}
    manifests = 0
    for name in sorted(files):
        match = _MANIFEST.fullmatch(name)
        if match is None:
            continue
        tag, algorithm = match.groups()
        if algorithm not in _ALGORITHMS:
            problems.append(f"{name}: unknown checksum algorithm {algorithm!r}")
            continue
        listed = _check_manifest(name, algorithm, files[name].decode("utf-8", "replace"), files, problems)
        if tag is None:
            manifests += 1
            problems.extend(f"{p}: in the payload but not in {name}" for p in sorted(payload - listed))
            problems.extend(f"{name}: lists {p}, which is not under data/" for p in sorted(listed - payload))
    if manifests == 0:
        problems.append("no payload manifest (manifest-<algorithm>.txt)")
    info = files.get("bag-info.txt")
    oxum = _parse_tag_lines(info.decode("utf-8", "replace")).get("Payload-Oxum") if info is not None else None
    if oxum is not None:
        actual = f"{sum(len(files[p]) for p in payload)}.{len(payload)}"
        if oxum != actual:
            problems.append(f"bag-info.txt: Payload-Oxum {oxum} but the payload is {actual} (bytes.files)")
    return problems
