"""C2SP signed notes, checkpoints and cosignatures: published vectors, round trips, tampering."""

from __future__ import annotations

import base64

import pytest

from storage.checkpoint import (
    COSIGNATURE_V1,
    ED25519,
    MAX_NOTE_BYTES,
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    add_signatures,
    cosign,
    cosignature_timestamp,
    generate_log_key,
    generate_witness_key,
    key_id,
    open_note,
    parse_note,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
    verify_cosignature,
)
from storage.errors import CheckpointError
from storage.merkle import leaf_hash

# golang.org/x/mod/sumdb/note tests and package documentation.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
# c2sp.org/signed-note example.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n— example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# c2sp.org/tlog-cosignature example (its witness key is not published: only the layout is checked).
COSIGNED_EXAMPLE = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "— example.com/behind-the-sofa "
    "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— witness.example.com/w1 "
    "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)


def test_go_vectors_byte_exact() -> None:
    signer = NoteSigner.from_skey(GO_SKEY)
    assert signer.skey() == GO_SKEY
    assert signer.verifier.vkey() == GO_VKEY
    assert sign_note(GO_TEXT, [signer]) == GO_NOTE  # Ed25519 is deterministic
    assert open_note(GO_NOTE, NoteVerifier.from_vkey(GO_VKEY)).text == GO_TEXT


def test_spec_vector_opens() -> None:
    verifier = NoteVerifier.from_vkey(SPEC_VKEY)
    assert verifier.vkey() == SPEC_VKEY
    assert open_note(SPEC_NOTE.encode(), verifier).text == "This is an example message.\n"


def test_spec_cosignature_layout() -> None:
    note = parse_note(COSIGNED_EXAMPLE)
    checkpoint = Checkpoint.parse(note.text)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    witness = note.signatures[1]
    assert witness.name == "witness.example.com/w1"
    assert len(witness.signature) == 8 + 64
    assert cosignature_timestamp(witness) == 1679315147  # the "time" line of the spec's example


def test_key_strings_refuse_manglings() -> None:
    for bad in (
        GO_VKEY.replace("c74f20a3", "c74f20a4"),
        GO_VKEY.replace("+", " ", 1),
        GO_VKEY[:-1],
        GO_VKEY.replace("AR", "Ah", 1),  # unknown signature type
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ):
        with pytest.raises(CheckpointError):
            NoteVerifier.from_vkey(bad)
    with pytest.raises(CheckpointError):
        NoteSigner.from_skey(GO_SKEY.replace("c74f20a3", "00000000"))
    with pytest.raises(CheckpointError):
        NoteSigner.from_skey(GO_SKEY.removeprefix("PRIVATE+KEY+"))


def _checkpoint(size: int = 7, origin: str = "node.example/audit") -> Checkpoint:
    return Checkpoint(origin, size, leaf_hash(str(size).encode()), ("extension line",))


def test_checkpoint_round_trip_and_tampering() -> None:
    key = generate_log_key("node.example/audit")
    note = sign_checkpoint(_checkpoint(), key)
    checkpoint, _ = verify_checkpoint(note, key.verifier)
    assert checkpoint == _checkpoint()
    lines = note.split("\n")
    assert lines[:2] == ["node.example/audit", "7"]
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(note.replace("\n7\n", "\n8\n", 1), key.verifier)
    with pytest.raises(CheckpointError, match="no signature by the known key"):
        verify_checkpoint(note, generate_log_key("node.example/audit").verifier)
    other = generate_log_key("other.example/audit")
    with pytest.raises(CheckpointError, match="cannot sign"):
        sign_checkpoint(_checkpoint(), other)
    with pytest.raises(CheckpointError, match="origin"):
        verify_checkpoint(sign_note(_checkpoint().text(), [other]), other.verifier)


@pytest.mark.parametrize(
    "text",
    [
        "o\n07\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "o\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "o\n7\n",
        "o\n7\nAAAA\n",
        "o\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\next\n",
        "o\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "o\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n",  # non-canonical base64
    ],
)
def test_malformed_checkpoints_refused(text: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.parse(text)


def test_malformed_notes_refused() -> None:
    verifier = NoteVerifier.from_vkey(GO_VKEY)
    signature_line = GO_NOTE[len(GO_TEXT) + 1 :]
    for bad in (
        GO_NOTE.replace("\n\n", "\n"),  # no blank line
        GO_NOTE[:-1],  # no final newline
        GO_NOTE.replace("problem,", "problem,\x01"),  # control character
        GO_NOTE + signature_line,  # the same signature twice
        GO_NOTE.replace("— PeterNeumann", "-- PeterNeumann"),
        GO_NOTE.replace("PeterNeumann x08", "PeterNeumann  x08"),
        GO_TEXT + "\n" + signature_line * 0,
        GO_NOTE.encode() + b"\xff",
        GO_TEXT + "\n" * (MAX_NOTE_BYTES) + signature_line,
    ):
        with pytest.raises(CheckpointError):
            open_note(bad, verifier)


def test_unknown_signers_are_ignored_but_one_known_is_required() -> None:
    enoch = generate_log_key("EnochRoot")
    note = add_signatures(GO_NOTE, parse_note(sign_note(GO_TEXT, [enoch])).signatures)
    assert open_note(note, NoteVerifier.from_vkey(GO_VKEY)).text == GO_TEXT
    assert open_note(note, enoch.verifier).text == GO_TEXT
    with pytest.raises(CheckpointError, match="no signature"):
        open_note(GO_NOTE, enoch.verifier)
    # same name, other key: unknown, not a failure of the known key
    impostor = NoteSigner("PeterNeumann", ED25519, generate_log_key("x").private_key)
    with pytest.raises(CheckpointError, match="no signature"):
        open_note(sign_note(GO_TEXT, [impostor]), NoteVerifier.from_vkey(GO_VKEY))


def test_cosignature_round_trip_and_tampering() -> None:
    log = generate_log_key("node.example/audit")
    witness = generate_witness_key("axis.example/witness")
    assert witness.verifier.key_id == key_id("axis.example/witness", COSIGNATURE_V1, witness.verifier.public_key)
    assert witness.verifier.key_id != key_id("axis.example/witness", ED25519, witness.verifier.public_key)
    note = sign_checkpoint(_checkpoint(), log)
    cosigned = add_signatures(note, [cosign(_checkpoint().text(), witness, 1_700_000_000)])
    assert verify_cosignature(cosigned, witness.verifier) == 1_700_000_000
    verify_checkpoint(cosigned, log.verifier)  # the log's signature still opens it
    assert NoteVerifier.from_vkey(witness.verifier.vkey()) == witness.verifier
    assert NoteSigner.from_skey(witness.skey()).verifier == witness.verifier
    line = cosigned.splitlines()[-1]
    raw = bytearray(base64.b64decode(line.split(" ")[2]))
    raw[11] ^= 1  # the timestamp is signed too
    forged = cosigned.replace(line, f"— axis.example/witness {base64.b64encode(bytes(raw)).decode()}")
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_cosignature(forged, witness.verifier)
    with pytest.raises(CheckpointError, match="0x04"):
        cosign(_checkpoint().text(), log, 1)
    with pytest.raises(CheckpointError, match="cosign"):
        sign_note("x\n", [witness])
    with pytest.raises(CheckpointError, match="repeats"):
        add_signatures(cosigned, [cosign(_checkpoint().text(), witness, 1_700_000_001)])


def test_a_note_with_lone_surrogates_is_refused_as_not_utf8() -> None:
    # JSON's "\ud800" escape gives such a string: it is not UTF-8 text (c2sp.org/signed-note), and must be
    # refused with CheckpointError, not crash the verifier (or a witness answering over HTTP) with an encode error.
    key = generate_log_key("node.example/audit")
    note = sign_checkpoint(_checkpoint(), key)
    for bad in (note.replace("extension line", "extension \ud800line"), note.replace("— node", "— no\udc00de")):
        with pytest.raises(CheckpointError, match="UTF-8"):
            verify_checkpoint(bad, key.verifier)
    with pytest.raises(CheckpointError, match="UTF-8"):
        sign_note("text \ud800\n", [key])


def test_an_unknown_signer_with_an_unusual_but_valid_name_is_ignored() -> None:
    # signed-note: a key name is non-empty without Unicode spaces or '+'; a soft hyphen, a zero-width joiner
    # or an unassigned code point are allowed, and an unknown key's line must be ignored, not refuse the note.
    other = base64.b64encode(b"\x01\x02\x03\x04" + b"\x00" * 64).decode()
    for name in ("w\u00adx.example", "a\u200db", "x\U000e0080y"):
        note = GO_NOTE + f"— {name} {other}\n"
        assert open_note(note, NoteVerifier.from_vkey(GO_VKEY)).text == GO_TEXT
    for name in ("a\u00a0b", "a\u2009b", "a+b", "a\u0085b"):  # Unicode spaces and '+' stay refused
        with pytest.raises(CheckpointError, match="key name"):
            open_note(GO_NOTE + f"— {name} {other}\n", NoteVerifier.from_vkey(GO_VKEY))
