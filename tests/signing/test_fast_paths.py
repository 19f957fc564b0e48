"""benchmarks/signing.py runs and speaks JSON on its last line (smoke only: no timing is asserted), and
the fast paths it measures give what the general paths give: the same bytes, the same digests, the same
trees and errors, the same CMS objects, and path validations reused only while nothing could change."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import math
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from pyhanko.pdf_utils.images import pil_image
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.signers import Signer
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes

import signing.envelope as envelope
from node.samples import sample_monthly_report, sample_pdf
from schemas import StatusCode, UnreadableXmlError, UnsafeXmlError, build_message, parse_xml_safely
from signing._private import xmldsig
from signing._private.images import handwriting_png, image_xobject, seal_png
from signing._private.pathcache import PATH_CACHE_SECONDS
from signing._private.pyhanko_signer import KeySigner
from signing.envelope import sign_envelope, verify_envelope
from signing.keys import SoftwareKey
from signing.pdf import _image
from signing.report import Indication
from signing.trust import TrustStore
from tests.conftest import REPO
from tests.signing.pki_helpers import MiniPki, SoftKey

SENDER = "000.01.41.H41"

NUMBERS = (
    "message_bytes",
    "pdf_bytes",
    "raw_rsa_signs_per_s",
    "envelope_signs_per_s",
    "envelope_verifies_per_s",
    "pades_signs_per_s",
    "pades_copy_signs_per_s",
    "pades_signer_signs_per_s",
    "pades_verifies_per_s",
    "naive_pades_signs_per_s",
    "envelope_sign_vs_raw_rsa",
    "pades_sign_vs_naive",
    "pades_invisible_sign_vs_naive",
)
FLAGS = ("envelope_sign_target_met", "pades_sign_target_met", "pades_invisible_sign_target_met")


def test_signing_benchmark_prints_one_json_object_last() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "signing.py"), "--seconds", "0.05"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) > 1, "human-readable lines come before the JSON"
    result = json.loads(lines[-1])
    assert isinstance(result, dict)
    for key in NUMBERS:
        value = result[key]
        assert isinstance(value, int | float), key
        assert not isinstance(value, bool), key
        assert math.isfinite(value), (key, value)
        assert value > 0, (key, value)
    for key in FLAGS:
        assert isinstance(result[key], bool), key
    assert 90_000 <= result["pdf_bytes"] < result["message_bytes"]
    for key in ("python", "cryptography", "pyhanko"):
        assert isinstance(result[key], str), key
        assert result[key], key


# --- the envelope: splicing the signature into the bytes ------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> MiniPki:
    return MiniPki.create()


@pytest.fixture(scope="module")
def org_key(pki: MiniPki) -> SoftKey:
    return pki.organisation(SENDER)


@pytest.fixture
def trust(pki: MiniPki) -> TrustStore:
    return TrustStore(roots=(pki.root,), allow_fetching=False)


def _status_message() -> bytes:
    from schemas import Organization, ResponseFor, StatusHeader, StatusMessage

    return build_message(
        StatusMessage(
            header=StatusHeader(
                from_=Organization(organ_id=SENDER, organ_name="Sở Tài chính"),
                response_for=ResponseFor(organ_id="000.00.00.G12", document_id="000.00.00.G12,2026/11/01,12/CV-BTC"),
                status_code=StatusCode.REGISTERED,
                timestamp=dt.datetime(2026, 11, 20, 9, 0),
            )
        )
    )


def _general(monkeypatch: pytest.MonkeyPatch, data: bytes, key: SoftKey, when: dt.datetime) -> bytes:
    with monkeypatch.context() as m:
        m.setattr(envelope, "_sign_by_splicing", lambda *args: None)
        return sign_envelope(data, key, signing_time=when)


def _spliced(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, call by call, whether the fast path produced the result."""
    taken: list[bool] = []
    real = envelope._sign_by_splicing

    def spy(*args: object) -> bytes | None:
        result = real(*args)  # type: ignore[arg-type]
        taken.append(result is not None)
        return result

    monkeypatch.setattr(envelope, "_sign_by_splicing", spy)
    return taken


@pytest.mark.parametrize(
    ("message", "spliced"),
    [
        pytest.param(lambda: build_message(sample_monthly_report(pdf_size=30_000)), True, id="report-with-pdf"),
        pytest.param(lambda: build_message(sample_monthly_report()), True, id="report-small-pdf"),
        # an empty <TraceHeaderList/> has no end tag to put the signature after: the general path does it
        pytest.param(_status_message, False, id="status"),
    ],
)
def test_spliced_signature_is_byte_for_byte_the_general_one(
    message: object, spliced: bool, org_key: SoftKey, trust: TrustStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = message()  # type: ignore[operator]
    when = dt.datetime.now(dt.UTC)
    general = _general(monkeypatch, data, org_key, when)
    taken = _spliced(monkeypatch)
    fast = sign_envelope(data, org_key, signing_time=when)
    assert taken == [spliced]
    assert fast == general
    assert verify_envelope(fast, trust).report.signatures[0].indication is Indication.TOTAL_PASSED


def test_splicing_declines_when_the_end_tag_might_be_elsewhere(
    org_key: SoftKey, trust: TrustStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = build_message(sample_monthly_report(pdf_size=5_000))
    # a comment before the anchor holding its end tag: the bytes cannot be trusted to place the signature
    tricky = data.replace(b"<edXML:From>", b"<!-- </edXML:TraceHeaderList> --><edXML:From>", 1)
    assert tricky != data
    when = dt.datetime.now(dt.UTC)
    general = _general(monkeypatch, tricky, org_key, when)
    taken = _spliced(monkeypatch)
    assert sign_envelope(tricky, org_key, signing_time=when) == general
    assert taken == [False]
    assert verify_envelope(general, trust).report.signatures[0].indication is Indication.TOTAL_PASSED


def test_foreign_layout_keeps_its_bytes_and_verifies(
    org_key: SoftKey, trust: TrustStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = build_message(sample_monthly_report(pdf_size=5_000))
    foreign = (
        data.replace(b"<?xml version='1.0' encoding='UTF-8'?>", b'<?xml version="1.0" encoding="utf-8"?>')
        .replace(b"</edXML:edXMLEnvelope>", b"</edXML:edXMLEnvelope><!-- archived copy -->")
        .replace(b"<edXML:OrganId>", b"<edXML:OrganId >", 1)
    )
    taken = _spliced(monkeypatch)
    signed = sign_envelope(foreign, org_key)
    assert taken == [True]
    assert signed.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    assert b"<!-- archived copy -->" in signed
    assert verify_envelope(signed, trust).report.signatures[0].indication is Indication.TOTAL_PASSED


def test_parts_without_ids_take_the_general_path(org_key: SoftKey, monkeypatch: pytest.MonkeyPatch) -> None:
    data = build_message(sample_monthly_report(pdf_size=5_000)).replace(b' Id="edxml-business"', b"")
    when = dt.datetime.now(dt.UTC)
    general = _general(monkeypatch, data, org_key, when)
    taken = _spliced(monkeypatch)
    assert sign_envelope(data, org_key, signing_time=when) == general
    assert taken == []  # not even tried: the tree had to be changed


# --- digests and parsing ---------------------------------------------------------------------------------


HOLE = b"@@lienthong-c14n-text@@"
END_TEXT = b"</edXML:ContentTransferEncoded>"


def _attachment(data: bytes) -> etree._Element:
    return xmldsig.signed_parts(parse_xml_safely(data))[-1].element


@pytest.mark.parametrize(
    ("change", "fast"),
    [
        pytest.param(lambda d: d, True, id="plain"),
        pytest.param(lambda d: d.replace(b"<ContentType>", b"<ContentType n='" + HOLE + b"'>"), False, id="hole-twice"),
        pytest.param(lambda d: d.replace(END_TEXT, b"&amp;&gt;&#13;" + END_TEXT), False, id="escaped-text"),
    ],
)
def test_large_text_digest_is_the_c14n_digest(change: object, fast: bool) -> None:
    data = change(build_message(sample_monthly_report(pdf_size=20_000)))  # type: ignore[operator]
    expected = xmldsig.digest_b64(_attachment(data))
    element = _attachment(data)
    assert xmldsig.digest_b64_consuming(element) == expected
    big = element[-1]
    assert (big.text == HOLE.decode()) is fast  # consumed only when it took the fast way


def test_fast_parse_gives_the_same_tree() -> None:
    data = build_message(sample_monthly_report(pdf_size=20_000))
    assert etree.tostring(xmldsig.parse(data)) == etree.tostring(parse_xml_safely(data))
    with_comments = data.replace(b"<edXML:From>", b"<!-- c --><?pi x?><edXML:From>", 1)
    assert etree.tostring(xmldsig.parse(with_comments)) == etree.tostring(parse_xml_safely(data))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>", id="doctype"),
        pytest.param(b"<a>" * 65 + b"</a>" * 65, id="too-deep"),
        pytest.param(b"<a><b></a>", id="malformed"),
        pytest.param(b"<a>&undefined;</a>", id="entity"),
        pytest.param(b"junk<?xml version='1.0'?><a/>", id="stray-prefix"),
        pytest.param(b"<?xml version='1.0' encoding='ISO-8859-1'?><a/>", id="latin-1"),
        pytest.param(b"", id="empty"),
    ],
)
def test_fast_parse_refuses_what_parse_xml_safely_refuses(data: bytes) -> None:
    with pytest.raises((UnsafeXmlError, UnreadableXmlError)) as expected:
        parse_xml_safely(data)
    with pytest.raises(type(expected.value)) as got:
        xmldsig.parse(data)
    assert str(got.value) == str(expected.value)


def test_fast_parse_accepts_the_deepest_allowed() -> None:
    deepest = b"<a>" * 64 + b"</a>" * 64
    assert etree.tostring(xmldsig.parse(deepest)) == etree.tostring(parse_xml_safely(deepest))


# --- PAdES: the CMS template, images and fonts --------------------------------------------------------------


def test_cms_from_the_template_is_what_pyhanko_builds(org_key: SoftKey) -> None:
    signer = KeySigner(SoftwareKey(org_key.private_key, org_key.certificate, org_key.chain))
    for _ in range(3):
        digest = hashes.Hash(hashes.SHA256())
        digest.update(str(dt.datetime.now()).encode())
        value = digest.finalize()
        attrs = PdfCMSSignedAttributes(signing_time=dt.datetime.now(dt.UTC))
        fast = asyncio.run(signer.async_sign(value, "sha256", use_pades=True, signed_attr_settings=attrs))
        plain = asyncio.run(Signer.async_sign(signer, value, "sha256", use_pades=True, signed_attr_settings=attrs))
        assert fast.dump() == plain.dump()
    assert signer._template is not None


def test_ecdsa_keys_sign_cms_the_pyhanko_way(pki: MiniPki) -> None:
    soft = pki.organisation(SENDER, kind="ec")
    signer = KeySigner(SoftwareKey(soft.private_key, soft.certificate, soft.chain))
    asyncio.run(signer.async_sign(bytes(32), "sha256", use_pades=True))
    assert signer._template is None


@pytest.mark.parametrize("png", [seal_png(), handwriting_png()], ids=["seal", "handwriting"])
def test_image_xobjects_are_written_as_pil_image_writes_them(png: bytes) -> None:
    def objects(make: object) -> list[bytes]:
        writer = IncrementalPdfFileWriter(io.BytesIO(sample_pdf()))
        ref = make(writer)  # type: ignore[operator]
        stream = ref.get_object()
        smask = stream["/SMask"].get_object()
        return [bytes(stream.encoded_data), bytes(smask.encoded_data), repr(sorted(stream.keys())).encode()]

    expected = objects(lambda w: pil_image(_image(png), w))
    assert objects(lambda w: image_xobject(png, _image(png), w)) == expected  # recorded
    assert objects(lambda w: image_xobject(png, _image(png), w)) == expected  # replayed


# --- the path validation cache --------------------------------------------------------------------------


def _count_validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = envelope.check_certificate

    def counting(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(envelope, "check_certificate", counting)
    return calls


def test_a_passed_path_is_reused_briefly(
    org_key: SoftKey, trust: TrustStore, pki: MiniPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed = sign_envelope(build_message(sample_monthly_report()), org_key)
    calls = _count_validations(monkeypatch)
    first = verify_envelope(signed, trust).report.signatures[0]
    second = verify_envelope(signed, trust).report.signatures[0]
    assert calls == [1]
    assert first.indication is second.indication is Indication.TOTAL_PASSED
    assert first.chain == second.chain
    # another store: its own cache
    other = TrustStore(roots=(pki.root,), allow_fetching=False)
    verify_envelope(signed, other)
    assert calls == [2]
    # revocation data learnt since: validated again, and reused no longer than the data is fresh
    crl = pki.short_lived_crl()
    trust.remember_revocation([], [crl.public_bytes(Encoding.DER)])
    assert verify_envelope(signed, trust).report.signatures[0].indication is Indication.TOTAL_PASSED
    assert calls == [3]
    (entry,) = [e for e in envelope._path_cache(trust)._entries.values() if e.check.revocation]
    assert entry.until <= crl.next_update_utc
    assert entry.until - entry.since <= dt.timedelta(seconds=PATH_CACHE_SECONDS)


def test_failures_are_validated_every_time(org_key: SoftKey, monkeypatch: pytest.MonkeyPatch) -> None:
    signed = sign_envelope(build_message(sample_monthly_report()), org_key)
    stranger = TrustStore(roots=(MiniPki.create("Other Root").root,), allow_fetching=False)
    calls = _count_validations(monkeypatch)
    for _ in range(2):
        assert verify_envelope(signed, stranger).report.signatures[0].indication is not Indication.TOTAL_PASSED
    assert calls == [2]
