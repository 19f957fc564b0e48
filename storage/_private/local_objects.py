"""Local-file backend of the object store (lưu trữ trên tệp cục bộ).

Layout under the root: ``sha256/ab/<hex>`` holds the bytes (read-only), ``<hex>.meta`` the JSON metadata
written once at first store, ``<hex>.hold`` exists while a legal hold is on; ``LAYOUT`` says so (stores made
before it use ``sha256/ab/cd/<hex>``). Every file is created-only: written to a temp file in the same
directory, fsynced, then hard-linked to its final name. ``link(2)`` fails if the name exists, so nothing is
ever replaced, and a crash leaves at worst an unused ``.tmp-*`` file that nothing reads. A new object's bytes
and metadata share one directory sync. Write-once here is enforced by this code and file modes, not by the
operating system against a user with write access to the directory (see docs/object-store.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from storage.errors import (
    ObjectCorruptError,
    ObjectExistsError,
    ObjectLockError,
    ObjectNotFoundError,
    ObjectStoreConfigError,
    StorageError,
)
from storage.objects import ObjectInfo, ObjectRef, content_key, key_digest
from storage.retention import RetentionPolicy, check_document_class

TEMP_PREFIX = ".tmp-"
_READ_ONLY = 0o444


def open_local_store(url: str, retention: RetentionPolicy) -> LocalObjectStore:
    """``file:///abs/path`` (host empty or ``localhost``) or a plain filesystem path."""
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme != "file":
            raise ObjectStoreConfigError(f"unsupported object store URL scheme {parts.scheme!r} (use file:// or s3://)")
        if parts.netloc not in ("", "localhost"):
            raise ObjectStoreConfigError(
                f"file URL must name a local path (file:///abs/path), got host {parts.netloc!r}"
            )
        if parts.query or parts.fragment:
            raise ObjectStoreConfigError("file URL takes no query or fragment")
        path = unquote(parts.path)
    else:
        path = url
    if not path:
        raise ObjectStoreConfigError("object store path is empty")
    return LocalObjectStore(Path(path), retention)


def _fsync_dir(path: Path) -> None:
    # A new or removed directory entry is durable only once the directory itself is synced.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ensure_dir(path: Path) -> None:
    """Create *path* and missing parents, syncing each parent that gained an entry."""
    if path.is_dir():
        return
    _ensure_dir(path.parent)
    with contextlib.suppress(FileExistsError):  # another writer may create it at the same moment
        path.mkdir()
        _fsync_dir(path.parent)


def _create_once(path: Path, data: bytes, mode: int) -> bool:
    """Write *data* at *path* unless the name exists; True if this call created it. Crash-safe."""
    return _create_in_dir(path.parent, ((path.name, data),), mode)[0]


def _create_in_dir(directory: Path, files: tuple[tuple[str, bytes], ...], mode: int) -> list[bool]:
    """Create each (name, data) in *directory* unless the name exists, in order; which ones this call created.

    Every file's bytes are synced before any name appears, and the directory is synced once for all the
    names, so N files cost N + 1 syncs rather than 2N.
    """
    temps: list[Path] = []
    try:
        for name, data in files:
            temp = directory / f"{TEMP_PREFIX}{name}-{secrets.token_hex(8)}"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            temps.append(temp)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fchmod(fd, mode)
                os.fsync(fd)
            finally:
                os.close(fd)
        created = []
        for temp, (name, _) in zip(temps, files, strict=True):
            try:
                os.link(temp, directory / name)  # atomic, and refuses an existing name (unlike rename)
                created.append(True)
            except FileExistsError:
                created.append(False)
        if any(created):
            _fsync_dir(directory)
        return created
    finally:
        for temp in temps:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


LAYOUT_FILE = "LAYOUT"
_LAYOUTS = {"sha256/ab/<sha256>": 1, "sha256/ab/cd/<sha256>": 2}


def _layout_levels(root: Path) -> int:
    """How many directory levels this store uses, from its ``LAYOUT`` file, written once when first opened.

    A new store uses one level of 256 directories: after its first few thousand objects every directory exists,
    so a put costs three syncs. Stores made before the ``LAYOUT`` file (two levels, 65,536 directories, where
    a put made a new directory, and synced its parent, for most of the store's first hundred thousand
    objects) keep their layout: nothing is moved.
    """
    marker = root / LAYOUT_FILE
    if not marker.exists():
        layout = "sha256/ab/cd/<sha256>" if (root / "sha256").exists() else "sha256/ab/<sha256>"
        _create_once(marker, f"{layout}\n".encode(), _READ_ONLY)  # if another process won, its choice stands
    text = marker.read_text(encoding="utf-8").strip()
    if text not in _LAYOUTS:
        raise ObjectStoreConfigError(f"{marker}: unknown object store layout {text!r}")
    return _LAYOUTS[text]


class LocalObjectStore:
    """Objects as read-only files under *root*; see the module docstring for the layout."""

    def __init__(self, root: Path, retention: RetentionPolicy) -> None:
        self.root = root.absolute()
        self.retention = retention
        try:
            _ensure_dir(self.root)
            self._levels = _layout_levels(self.root)
        except OSError as exc:
            raise ObjectStoreConfigError(f"cannot use {self.root} as object store: {exc}") from exc

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        digest = key_digest(key)
        if self._levels == 1:
            return self.root / "sha256" / digest[:2] / digest
        return self.root / "sha256" / digest[:2] / digest[2:4] / digest

    @staticmethod
    def _sidecar(path: Path, suffix: str) -> Path:
        return path.with_name(path.name + suffix)

    def put(
        self,
        data: bytes,
        *,
        document_class: str | None = None,
        content_type: str = "application/octet-stream",
        legal_hold: bool = False,
    ) -> ObjectRef:
        if document_class is not None:
            check_document_class(document_class)
        key = content_key(data)
        ref = ObjectRef(key=key, sha256=key_digest(key), size=len(data))
        path = self._path(key)
        with self._io_errors(key):
            if not path.exists():
                _ensure_dir(path.parent)
                # Metadata is linked before the bytes and both are synced together. A crash before that sync
                # may leave either name or both; bytes found without metadata get it on the next put of the
                # same bytes (until then they cannot be deleted: stat fails closed). If a crashed earlier put
                # left metadata, the first one stays (it is written once too).
                _, created = _create_in_dir(
                    path.parent,
                    ((self._sidecar(path, ".meta").name, self._meta(document_class, content_type)), (path.name, data)),
                    _READ_ONLY,
                )
                if not created:
                    self._check_existing(path, data, key)
            else:
                self._check_existing(path, data, key)
                meta = self._sidecar(path, ".meta")
                if not meta.exists():
                    _create_once(meta, self._meta(document_class, content_type), _READ_ONLY)
            if legal_hold:
                self.set_legal_hold(key, True)
        return ref

    def _meta(self, document_class: str | None, content_type: str) -> bytes:
        now = datetime.now(UTC)
        until = self.retention.retain_until(document_class, now)
        meta = {
            "content_type": content_type,
            "document_class": document_class,
            "stored_at": now.isoformat(),
            "retain_until": until.isoformat() if until else None,
        }
        return json.dumps(meta, sort_keys=True).encode()

    @staticmethod
    def _check_existing(path: Path, data: bytes, key: str) -> None:
        """The same bytes again is fine; anything else under the name is refused, never replaced."""
        if path.read_bytes() != data:
            raise ObjectExistsError(
                f"{key} already holds other bytes (corrupt?); write-once store will not replace them"
            )

    def get(self, key: str) -> bytes:
        path = self._path(key)
        with self._io_errors(key):
            data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != key_digest(key):
            raise ObjectCorruptError(f"{key}: stored bytes do not match their SHA-256 ({path})")
        return data

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        with self._io_errors(key):
            size = path.stat().st_size
            try:
                meta = json.loads(self._sidecar(path, ".meta").read_bytes())
                until = datetime.fromisoformat(meta["retain_until"]) if meta["retain_until"] else None
            except (FileNotFoundError, ValueError, KeyError, TypeError) as exc:
                # Without its metadata we cannot tell the retention: fail closed (no delete possible).
                raise ObjectCorruptError(f"{key}: metadata missing or unreadable: {exc}") from exc
            hold = self._sidecar(path, ".hold").exists()
        return ObjectInfo(
            key=key,
            sha256=key_digest(key),
            size=size,
            content_type=str(meta.get("content_type") or "application/octet-stream"),
            document_class=meta.get("document_class"),
            retain_until=until,
            legal_hold=hold,
        )

    def set_legal_hold(self, key: str, on: bool) -> None:
        path = self._path(key)
        hold = self._sidecar(path, ".hold")
        with self._io_errors(key):
            if not path.is_file():
                raise FileNotFoundError(path)
            if on:
                _create_once(hold, b"", _READ_ONLY)
            else:
                with contextlib.suppress(FileNotFoundError):
                    hold.unlink()
                    _fsync_dir(path.parent)

    def delete(self, key: str) -> None:
        info = self.stat(key)
        if info.locked_at(datetime.now(UTC)):
            why = "legal hold is on" if info.legal_hold else f"retained until {info.retain_until:%Y-%m-%d %H:%M} UTC"
            raise ObjectLockError(f"{key}: delete refused, {why}")
        path = self._path(key)
        with self._io_errors(key):
            # Bytes first: a crash then leaves orphan metadata, never bytes without their retention.
            path.unlink()
            for suffix in (".hold", ".meta"):
                with contextlib.suppress(FileNotFoundError):
                    self._sidecar(path, suffix).unlink()
            _fsync_dir(path.parent)

    @contextlib.contextmanager
    def _io_errors(self, key: str) -> Iterator[None]:
        """OS errors as storage errors naming the key."""
        try:
            yield
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"{key}: no such object in {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"{key}: {exc}") from exc
