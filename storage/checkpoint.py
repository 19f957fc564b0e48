"""Signed checkpoints of the audit log: C2SP signed-note, tlog-checkpoint and tlog-cosignature/v1 (điểm kiểm).

A checkpoint says "the log named *origin* has *size* entries and this root hash"; the log signs it with its
Ed25519 key as a signed note, and witnesses add cosignatures to the same note::

    lienthong.example/000.00.00.G22/audit
    1234
    3Tx2M7h2wUzIVdW6tDOczdv0IPXw5J5KDY7kRZxhO9M=

    — lienthong.example/000.00.00.G22/audit 8sb9eJ2k1RMXEb3Qd0jrZ0cfjTXD6HQUdjLO9l0wS8K4f6PT...
    — axis.example/witness 0x6Bq...

* https://c2sp.org/signed-note: text ending in a newline, a blank line, then lines ``— <name> <base64(key ID ‖
  signature)>``. Ed25519 (type 0x01) signs the text; key ID = ``SHA-256(name ‖ "\\n" ‖ type ‖ public key)[:4]``.
  Verifier keys are ``<name>+<hex key ID>+<base64(type ‖ public key)>``; signer keys are
  ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type ‖ 32-byte seed)>`` (golang.org/x/mod/sumdb/note).
* https://c2sp.org/tlog-checkpoint: origin line, decimal size without leading zeros, base64 root hash, then
  optional non-empty extension lines.
* https://c2sp.org/tlog-cosignature: type 0x04; the signature is ``timestamp (u64, big-endian) ‖ Ed25519``
  over ``"cosignature/v1\\ntime <timestamp>\\n" ‖ checkpoint text``.

Our notes are small, so we refuse any over :data:`MAX_NOTE_BYTES` or with more than :data:`MAX_SIGNATURES`
signatures, and any that carries two signatures by the same name and key ID.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from storage.errors import CheckpointError
from storage.merkle import HASH_SIZE

ED25519 = 0x01
"""Signature type of C2SP signed-note Ed25519 signatures (the log's own)."""
COSIGNATURE_V1 = 0x04
"""Signature type of C2SP tlog-cosignature/v1 timestamped Ed25519 witness cosignatures."""

MAX_NOTE_BYTES = 64 * 1024
MAX_SIGNATURES = 64  # the spec asks verifiers to accept at least 16
MAX_TIMESTAMP = 2**63 - 1

_EM_DASH = "\u2014"
_SIGNATURE_LINE = re.compile(rf"{_EM_DASH} (?P<name>[^ ]+) (?P<sig>[A-Za-z0-9+/=]+)")
_SIZE = re.compile(r"0|[1-9][0-9]*")
_PRIVATE_PREFIX = "PRIVATE+KEY+"


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64: padding and unused bits as the encoder writes them."""
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointError(f"{what} is not base64") from None
    if base64.b64encode(value).decode() != text:
        raise CheckpointError(f"{what} is not canonical base64")
    return value


def _check_name(name: str) -> None:
    """c2sp.org/signed-note: a key name is non-empty and has no Unicode space and no '+'.

    Nothing more: a note signed by an unknown key with an unusual (but valid) name must still open, since its
    line is ignored, not refused. Control characters are refused as they are anywhere in a note.
    """
    if not name or any(ch.isspace() or ch == "+" or ch < " " for ch in name):
        raise CheckpointError(f"key name {name!r} is empty or has a space, a '+' or a control character")
    _utf8(name, "key name")


def _utf8(text: str, what: str) -> bytes:
    """``text`` as UTF-8; a string holding lone surrogates (as JSON's \\ud800 escapes give) is not UTF-8 text."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise CheckpointError(f"{what} is not valid UTF-8 (it holds a lone surrogate)") from None


def key_id(name: str, sig_type: int, public_key: bytes) -> int:
    """The 32-bit key ID: the first four bytes of ``SHA-256(name ‖ 0x0A ‖ type ‖ public key)``."""
    _check_name(name)
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class NoteVerifier:
    """A public key that checks note signatures: the log's (type 0x01) or a witness's (type 0x04)."""

    name: str
    sig_type: int
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.sig_type not in (ED25519, COSIGNATURE_V1):
            raise CheckpointError(f"signature type {self.sig_type:#04x} is not Ed25519 (0x01) or cosignature (0x04)")
        if len(self.public_key) != 32:
            raise CheckpointError(f"an Ed25519 public key has 32 bytes, not {len(self.public_key)}")

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.sig_type, self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<hex key ID>+<base64(type ‖ public key)>``; the key ID must match the rest."""
        parts = vkey.split("+", 2)
        if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
            raise CheckpointError("a verifier key is <name>+<8 lowercase hex digits>+<base64 key>")
        name, hex_id, b64 = parts
        raw = _b64decode(b64, "verifier key")
        if len(raw) != 33:
            raise CheckpointError(f"verifier key holds {len(raw)} bytes, not type + 32-byte Ed25519 key")
        verifier = cls(name, raw[0], raw[1:])
        if verifier.key_id != int(hex_id, 16):
            raise CheckpointError(f"verifier key ID {hex_id} does not match its name and key ({verifier.key_id:08x})")
        return verifier

    def vkey(self) -> str:
        """The verifier key string, as published for auditors and witnesses."""
        encoded = base64.b64encode(bytes([self.sig_type]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    """An Ed25519 private key with its name: the log key (type 0x01) or a witness key (type 0x04)."""

    name: str
    sig_type: int
    private_key: Ed25519PrivateKey = field(repr=False, compare=False)

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.sig_type, _raw_public(self.private_key.public_key()))

    @classmethod
    def generate(cls, name: str, sig_type: int = ED25519) -> NoteSigner:
        """A fresh key named ``name``."""
        signer = cls(name, sig_type, Ed25519PrivateKey.generate())
        signer.verifier  # noqa: B018 - validates the name and type now, not at first use
        return signer

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Parse ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type ‖ seed)>``; the key ID must match."""
        if not skey.startswith(_PRIVATE_PREFIX):
            raise CheckpointError("a signer key starts with PRIVATE+KEY+")
        parts = skey[len(_PRIVATE_PREFIX) :].split("+", 2)
        if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
            raise CheckpointError("a signer key is PRIVATE+KEY+<name>+<8 lowercase hex digits>+<base64 seed>")
        name, hex_id, b64 = parts
        raw = _b64decode(b64, "signer key")
        if len(raw) != 33:
            raise CheckpointError(f"signer key holds {len(raw)} bytes, not type + 32-byte Ed25519 seed")
        signer = cls(name, raw[0], Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.verifier.key_id != int(hex_id, 16):
            raise CheckpointError(f"signer key ID {hex_id} does not match its name and key")
        return signer

    def skey(self) -> str:
        """The signer key string (secret: store it as the node stores its other keys)."""
        seed = self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        encoded = base64.b64encode(bytes([self.sig_type]) + seed).decode()
        return f"{_PRIVATE_PREFIX}{self.name}+{self.verifier.key_id:08x}+{encoded}"

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


def generate_log_key(name: str) -> NoteSigner:
    """A new Ed25519 log key; ``name`` is also the origin line of the log's checkpoints."""
    return NoteSigner.generate(name, ED25519)


def generate_witness_key(name: str) -> NoteSigner:
    """A new Ed25519 witness key for cosignature/v1."""
    return NoteSigner.generate(name, COSIGNATURE_V1)


# Notes.


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note."""

    name: str
    key_id: int
    signature: bytes  # after the key ID: the Ed25519 signature, or timestamp ‖ signature for a cosignature

    def line(self) -> str:
        encoded = base64.b64encode(self.key_id.to_bytes(4, "big") + self.signature).decode()
        return f"{_EM_DASH} {self.name} {encoded}\n"


@dataclass(frozen=True)
class Note:
    """A parsed signed note: its text (ending in a newline) and its signature lines, unverified."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def render(self) -> str:
        return self.text + "\n" + "".join(sig.line() for sig in self.signatures)


def _check_text(text: str) -> None:
    if any(ch < " " and ch != "\n" for ch in text):
        raise CheckpointError("a note holds no control characters but newlines")


def parse_note(data: str | bytes) -> Note:
    """Split a signed note into its text and signatures (nothing verified yet)."""
    if isinstance(data, bytes):
        if len(data) > MAX_NOTE_BYTES:
            raise CheckpointError(f"note of {len(data)} bytes is over the {MAX_NOTE_BYTES}-byte limit")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError("a note is UTF-8 text") from None
    elif len(data.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise CheckpointError(f"note is over the {MAX_NOTE_BYTES}-byte limit")
    else:
        _utf8(data, "note")
    _check_text(data)
    split = data.rfind("\n\n")
    if split < 0:
        raise CheckpointError("a note is text, a blank line, then signature lines: no blank line found")
    text, block = data[: split + 1], data[split + 2 :]
    if not block.endswith("\n"):
        raise CheckpointError("a note ends with a newline after its last signature line")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    signatures: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for number, line in enumerate(lines, 1):
        match = _SIGNATURE_LINE.fullmatch(line)
        if match is None:
            raise CheckpointError(f"signature line {number} is not '— <name> <base64>'")
        name = match["name"]
        _check_name(name)
        raw = _b64decode(match["sig"], f"signature line {number}")
        if len(raw) < 5:
            raise CheckpointError(f"signature line {number} is too short")
        sig = NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])
        if (sig.name, sig.key_id) in seen:
            raise CheckpointError(f"signature line {number} repeats a signature by {name} ({sig.key_id:08x})")
        seen.add((sig.name, sig.key_id))
        signatures.append(sig)
    return Note(text, tuple(signatures))


def sign_note(text: str, signers: Iterable[NoteSigner]) -> str:
    """``text`` (ending in a newline) signed by each Ed25519 signer (type 0x01)."""
    if not text.endswith("\n"):
        raise CheckpointError("note text ends with a newline")
    if text.endswith("\n\n"):
        raise CheckpointError("note text cannot end with a blank line")
    _check_text(text)
    _utf8(text, "note text")
    signatures = []
    for signer in signers:
        if signer.sig_type != ED25519:
            raise CheckpointError(f"{signer.name}: only Ed25519 (0x01) keys sign notes; witnesses cosign")
        signatures.append(NoteSignature(signer.name, signer.verifier.key_id, signer.sign(text.encode())))
    if not signatures:
        raise CheckpointError("a signed note needs at least one signature")
    return Note(text, tuple(signatures)).render()


def _find(note: Note, verifier: NoteVerifier) -> NoteSignature | None:
    wanted = (verifier.name, verifier.key_id)
    return next((s for s in note.signatures if (s.name, s.key_id) == wanted), None)


def open_note(data: str | bytes, verifier: NoteVerifier) -> Note:
    """Parse ``data`` and check the Ed25519 signature of ``verifier`` on its text.

    Signatures by other keys are ignored (they may be cosignatures); a missing or failing one raises.
    """
    note = parse_note(data)
    if verifier.sig_type != ED25519:
        raise CheckpointError(f"{verifier.name}: a note is opened with an Ed25519 (0x01) key")
    sig = _find(note, verifier)
    if sig is None:
        raise CheckpointError(f"note carries no signature by the known key {verifier.name}+{verifier.key_id:08x}")
    if not verifier.verify(note.text.encode(), sig.signature):
        raise CheckpointError(f"signature by {verifier.name} does not verify: the note was altered or forged")
    return note


# Checkpoints.


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint body: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise CheckpointError("checkpoint origin is one non-empty line")
        _check_text(self.origin)
        if self.size < 0:
            raise CheckpointError(f"checkpoint size {self.size} is negative")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"checkpoint root hash has {len(self.root_hash)} bytes, not {HASH_SIZE}")
        for line in self.extensions:
            if not line or "\n" in line:
                raise CheckpointError("checkpoint extension lines are non-empty single lines")
            _check_text(line)

    def text(self) -> str:
        """The note text: the lines that are signed."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode(), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a note text as a checkpoint body."""
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint text ends with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(f"checkpoint has {len(lines)} lines; origin, size and root hash are required")
        origin, size, root, *extensions = lines
        if not _SIZE.fullmatch(size):
            raise CheckpointError(f"checkpoint size {size!r} is not a decimal number without leading zeros")
        return cls(origin, int(size), _b64decode(root, "checkpoint root hash"), tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    """The checkpoint as a note signed by the log key; the key's name must be the origin."""
    if signer.name != checkpoint.origin:
        raise CheckpointError(f"log key {signer.name!r} cannot sign a checkpoint of origin {checkpoint.origin!r}")
    return sign_note(checkpoint.text(), [signer])


def verify_checkpoint(data: str | bytes, log_key: NoteVerifier) -> tuple[Checkpoint, Note]:
    """Open a signed checkpoint with the log's key; its origin must be the key's name."""
    note = open_note(data, log_key)
    checkpoint = Checkpoint.parse(note.text)
    if checkpoint.origin != log_key.name:
        raise CheckpointError(f"checkpoint origin {checkpoint.origin!r} is not the log key's name {log_key.name!r}")
    return checkpoint, note


# Cosignatures.


def _cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def cosign(text: str, witness: NoteSigner, timestamp: int) -> NoteSignature:
    """The witness's cosignature/v1 of a checkpoint text, at ``timestamp`` (POSIX seconds)."""
    if witness.sig_type != COSIGNATURE_V1:
        raise CheckpointError(f"{witness.name}: cosignatures need a type 0x04 witness key")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CheckpointError(f"cosignature timestamp {timestamp} is out of range")
    signature = witness.sign(_cosigned_message(text, timestamp))
    return NoteSignature(witness.name, witness.verifier.key_id, struct.pack(">Q", timestamp) + signature)


def verify_cosignature(data: str | bytes, witness: NoteVerifier) -> int:
    """Check the witness's cosignature on a note; returns its timestamp."""
    note = parse_note(data)
    if witness.sig_type != COSIGNATURE_V1:
        raise CheckpointError(f"{witness.name}: a cosignature is checked with a type 0x04 key")
    sig = _find(note, witness)
    if sig is None:
        raise CheckpointError(f"note carries no cosignature by {witness.name}+{witness.key_id:08x}")
    if len(sig.signature) != 8 + 64:
        raise CheckpointError(f"cosignature by {witness.name} has {len(sig.signature)} bytes, not 8 + 64")
    timestamp = cosignature_timestamp(sig)
    if not witness.verify(_cosigned_message(note.text, timestamp), sig.signature[8:]):
        raise CheckpointError(f"cosignature by {witness.name} does not verify")
    return timestamp


def cosignature_timestamp(sig: NoteSignature) -> int:
    """The timestamp a cosignature/v1 line carries (not verified)."""
    if len(sig.signature) < 8:
        raise CheckpointError("cosignature too short for its timestamp")
    (timestamp,) = struct.unpack(">Q", sig.signature[:8])
    if timestamp > MAX_TIMESTAMP:
        raise CheckpointError(f"cosignature timestamp {timestamp} is over 2**63 - 1")
    return int(timestamp)


def add_signatures(data: str | bytes, signatures: Sequence[NoteSignature]) -> str:
    """The note with more signature lines (cosignatures) appended; a repeated name and key ID is refused."""
    note = parse_note(data)
    return parse_note(Note(note.text, note.signatures + tuple(signatures)).render()).render()
