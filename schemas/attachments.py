"""Attachments in the edXML ``AttachmentEncoded`` convention.

Each file travels as ``/edXML/AttachmentEncoded/Attachment/ContentTransferEncoded``: the base64 of a
ZIP archive holding that one file. This module encodes files that way (deterministically: the same
file always gives the same text) and decodes them under limits, so that a ZIP bomb or a 2 GB upload is
refused before it costs more than the limit.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import posixpath
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass

from schemas.errors import AttachmentError, Location

MAX_NAME_BYTES = 255
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
)
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # ZIP's epoch: no clock in the bytes, so builds are reproducible
# Already-compressed formats are stored; deflating them again costs time and gains nothing.
_STORED_TYPES = frozenset(
    {
        "application/pdf",
        "application/zip",
        "application/gzip",
        "image/png",
        "image/jpeg",
        "image/gif",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
    }
)
_XML_TYPES = frozenset({"application/xml", "text/xml"})


@dataclass(frozen=True, slots=True)
class AttachmentLimits:
    """Bounds applied while decoding; the defaults suit official documents with scanned appendixes."""

    max_attachment_bytes: int = 64 * 1024 * 1024  # one decoded file
    max_total_bytes: int = 256 * 1024 * 1024  # all decoded files of one message
    max_attachments: int = 200
    max_compression_ratio: int = 200  # decoded size / ZIP member's compressed size


def sanitize_attachment_name(name: str) -> str:
    """A file name that is safe to write anywhere: no directories, no control characters, NFC.

    ``../../etc/passwd`` → ``passwd``; ``C:\\x\\báo cáo.pdf`` → ``báo cáo.pdf``. Raises
    :class:`AttachmentError` when nothing usable is left.
    """
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/")
    name = posixpath.basename(name)
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    if len(name) >= 2 and name[1] == ":" and name[0].isascii() and name[0].isalpha():
        name = name[2:]  # a drive-relative Windows path: C:report.pdf
    name = name.split(":", 1)[0]  # an NTFS alternate stream (report.pdf:hidden) is not part of the name
    # Windows drops trailing dots and spaces, and leading dots hide files on Unix.
    name = name.strip().lstrip(".").rstrip(". ").strip()
    if name and name.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        name = f"_{name}"
    if not name:
        raise AttachmentError("attachment name is empty once paths and control characters are removed")
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        _stem, dot, ext = name.rpartition(".")
        keep = MAX_NAME_BYTES - len(ext.encode()) - 1 if dot and len(ext) <= 16 else MAX_NAME_BYTES
        trimmed = encoded[:keep].decode("utf-8", errors="ignore")
        name = f"{trimmed}.{ext}" if dot and len(ext) <= 16 else trimmed
    return name


def content_type_problem(content_type: str, data: bytes) -> str | None:
    """Why ``data`` does not look like ``content_type`` (PDF and XML are checked), or None."""
    ctype = content_type.lower().split(";", 1)[0].strip()
    if ctype == "application/pdf":
        # ISO 32000 readers accept the header within the first 1024 bytes.
        if b"%PDF-" not in data[:1024]:
            return "declared application/pdf but the bytes do not start with a %PDF- header"
    elif ctype in _XML_TYPES or ctype.endswith("+xml"):
        head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
        if not head.startswith(b"<"):
            return f"declared {ctype} but the bytes do not start with '<'"
    return None


def encode_attachment(name: str, content_type: str, data: bytes) -> str:
    """Base64 of a deterministic ZIP holding ``data`` as ``name``."""
    method = zipfile.ZIP_STORED if content_type in _STORED_TYPES else zipfile.ZIP_DEFLATED
    info = zipfile.ZipInfo(name, date_time=_FIXED_ZIP_TIME)
    info.compress_type = method
    info.create_system = 3  # Unix, whatever machine builds it
    info.external_attr = 0o644 << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, data, compress_type=method, compresslevel=6)
    return base64.b64encode(buffer.getbuffer()).decode("ascii")


@dataclass(frozen=True, slots=True)
class DecodedAttachment:
    data: bytes
    member_name: str


def decode_attachment(
    encoded: str, *, limits: AttachmentLimits = AttachmentLimits(), location: Location | None = None
) -> DecodedAttachment:
    """Decode ``ContentTransferEncoded`` text: base64 → ZIP → the one file inside, within ``limits``."""
    # A ZIP holding N bytes is at least N bytes when stored; bound the base64 before decoding it.
    max_zip = limits.max_attachment_bytes + 64 * 1024
    text = encoded.strip()
    raw: bytes | None = None
    if len(text) // 4 * 3 <= max_zip:
        # Fast path: base64 on one line (what build_message writes) is decoded in place, without first
        # copying megabytes of text to drop white space that is not there. binascii reads an ASCII str
        # directly (base64.b64decode would copy it to bytes first); strict_mode is b64decode's validate.
        try:
            raw = binascii.a2b_base64(text, strict_mode=True)
        except (binascii.Error, ValueError):
            raw = None  # line breaks inside, or not base64: the general path below decides and says why
    if raw is None:
        compact = "".join(text.split())
        if len(compact) // 4 * 3 > max_zip:
            raise AttachmentError(
                f"attachment is larger than the limit of {limits.max_attachment_bytes} bytes", location
            )
        try:
            raw = binascii.a2b_base64(compact, strict_mode=True)
        except (binascii.Error, ValueError) as e:
            raise AttachmentError(f"ContentTransferEncoded is not valid base64: {e}", location) from None
        del compact
    del text
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as e:
        raise AttachmentError(f"attachment is not a ZIP archive: {e}", location) from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) != 1:
            raise AttachmentError(f"attachment ZIP must hold exactly one file, it holds {len(members)}", location)
        member = members[0]
        if member.flag_bits & 0x1:
            raise AttachmentError("attachment ZIP is encrypted", location)
        if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise AttachmentError(
                f"attachment ZIP uses compression method {member.compress_type}; only stored and deflate are accepted",
                location,
            )
        if member.file_size > limits.max_attachment_bytes:
            raise AttachmentError(
                f"attachment declares {member.file_size} bytes; the limit is {limits.max_attachment_bytes}", location
            )
        if member.compress_size and member.file_size / member.compress_size > limits.max_compression_ratio:
            raise AttachmentError(
                f"attachment ZIP compression ratio {member.file_size // member.compress_size}:1 "
                f"exceeds {limits.max_compression_ratio}:1 (zip bomb?)",
                location,
            )
        data = _read_bounded(archive, member, limits.max_attachment_bytes, location)
    return DecodedAttachment(data=data, member_name=member.filename)


def _read_bounded(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limit: int, location: Location | None) -> bytes:
    # The header's size may lie; count what actually comes out.
    chunks: list[bytes] = []
    size = 0
    try:
        with archive.open(member) as stream:
            while chunk := stream.read(1024 * 1024):
                size += len(chunk)
                if size > limit:
                    raise AttachmentError(f"attachment inflates beyond the limit of {limit} bytes", location)
                chunks.append(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise AttachmentError(f"attachment ZIP is damaged: {e}", location) from None
    # One chunk (files up to 1 MiB) is returned as it is; more are copied once, not grown and copied again.
    return b"".join(chunks)


def guess_content_type(name: str) -> str:
    """MIME type from a file name, for CLI specs that do not say; PDF when unknown is wrong, so octet-stream."""
    ext = os.path.splitext(name)[1].lower()
    return {
        ".pdf": "application/pdf",
        ".xml": "application/xml",
        ".zip": "application/zip",
        ".doc": "application/msword",
        ".xls": "application/vnd.ms-excel",
        ".txt": "text/plain",
        ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ".odt": "application/vnd.oasis.opendocument.text",
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".csv": "text/csv",
    }.get(ext, "application/octet-stream")
