"""Payload paths of BagIt packages (RFC 8493): what may be written, and how manifests spell it.

A bag travels to other systems (the historical archive, another operating system), so a path must mean the
same file everywhere: relative, ``/``-separated, no ``.``/``..``/empty segments, no NUL or backslash, not a
drive letter; Unicode in NFC; and no two paths that a case-insensitive file system (Windows, macOS) would
merge, nor a file where another path needs a folder.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from storage.errors import BagError

_DRIVE = re.compile(r"[A-Za-z]:")


def safe_payload_path(path: str) -> str:
    """``path`` (relative to ``data/``) in normal form, or :class:`BagError` saying why it is unsafe."""
    if not isinstance(path, str) or not path:
        raise BagError(f"payload path must be a non-empty string, not {path!r}")
    if "\x00" in path:
        raise BagError(f"payload path {path!r} contains NUL")
    if "\\" in path:
        raise BagError(f"payload path {path!r} contains a backslash: separate folders with /")
    if path.startswith("/") or _DRIVE.match(path):
        raise BagError(f"payload path {path!r} is absolute: give it relative to data/")
    normal = unicodedata.normalize("NFC", path)
    parts = normal.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise BagError(f"payload path {path!r} has an empty, '.' or '..' segment")
        if any(ord(c) < 0x20 and c not in "\r\n" for c in part):
            raise BagError(f"payload path {path!r} contains a control character")
    return normal


def check_distinct(paths: Iterable[str]) -> None:
    """Refuse duplicates (after NFC and case folding) and a file that is also another path's folder."""
    seen: dict[str, str] = {}
    folders: dict[str, str] = {}
    for path in paths:
        key = path.casefold()
        if key in seen:
            raise BagError(f"payload paths {seen[key]!r} and {path!r} name the same file")
        seen[key] = path
        parts = key.split("/")
        for depth in range(1, len(parts)):
            folders.setdefault("/".join(parts[:depth]), path)
    for key, path in seen.items():
        if key in folders:
            raise BagError(f"payload path {path!r} is a file but {folders[key]!r} needs it as a folder")


def encode_manifest_path(path: str) -> str:
    """RFC 8493 §2.1.3: in manifest lines, % → %25, LF → %0A, CR → %0D."""
    return path.replace("%", "%25").replace("\n", "%0A").replace("\r", "%0D")


def decode_manifest_path(path: str) -> str:
    """The inverse of :func:`encode_manifest_path` (either case of hex digits)."""
    return re.sub(r"%(0[aAdD]|25)", lambda m: {"0a": "\n", "0d": "\r", "25": "%"}[m.group(1).lower()], path)
