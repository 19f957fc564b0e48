"""``lienthong sign envelope|pdf`` and ``lienthong verify``, as a clerk and a recipient run them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from typer.testing import CliRunner

from node.cli import app
from node.samples import sample_monthly_report, sample_pdf
from schemas import build_message
from signing.devpki import DevPki, RunningResponders, create_dev_pki, serve_dev_pki
from tests.signing.fixtures import ORGAN_CODE as ORGAN
from tests.signing.fixtures import CaFixture, SoftHsmToken

runner = CliRunner()


@pytest.fixture
def message(tmp_path: Path) -> Path:
    path = tmp_path / "report.edxml"
    path.write_bytes(build_message(sample_monthly_report(pdf_size=5_000)))
    return path


def _pem_args(ca: CaFixture) -> list[str]:
    return ["--key", str(ca.rsa.key_path), "--cert", str(ca.rsa.cert_path), "--chain", str(ca.chain_path)]


@pytest.fixture
def sealed_message(test_ca: CaFixture, tmp_path: Path) -> Path:
    """The report as a clerk sends it: its PDF carries the organisation's signature (``sign pdf``) first."""
    pdf, sealed_pdf = tmp_path / "report.pdf", tmp_path / "report-sealed.pdf"
    pdf.write_bytes(sample_pdf(size=5_000))
    sealing = ["sign", "pdf", str(pdf), str(sealed_pdf), "--role", "organisation", *_pem_args(test_ca)]
    assert runner.invoke(app, sealing).exit_code == 0
    report = sample_monthly_report(pdf_size=5_000)
    attachment = report.attachments[0].model_copy(update={"data": sealed_pdf.read_bytes()})
    path = tmp_path / "sealed-report.edxml"
    path.write_bytes(build_message(report.model_copy(update={"attachments": (attachment,)})))
    return path


def test_sign_and_verify_an_envelope(sealed_message: Path, test_ca: CaFixture, tmp_path: Path) -> None:
    signed = tmp_path / "signed.edxml"
    result = runner.invoke(app, ["sign", "envelope", str(sealed_message), str(signed), *_pem_args(test_ca)])
    assert result.exit_code == 0, result.output
    verified = runner.invoke(app, ["verify", str(signed), "--trust", str(test_ca.root_path), "--offline"])
    assert verified.exit_code == 0, verified.output
    assert "HỢP LỆ / VALID" in verified.output
    assert "000.01.41.H41" in verified.output

    as_json = runner.invoke(app, ["verify", str(signed), "--trust", str(test_ca.root_path), "--offline", "--json"])
    report = json.loads(as_json.stdout)
    assert report["indication"] == "TOTAL_PASSED"
    assert report["signatures"][0]["signed_parts"][0] == "MessageHeader"
    assert [s["id"].split("#")[0] for s in report["signatures"]] == [
        "envelope",
        "attachment:bao-cao-ngan-sach-2026-10.pdf",
    ]


def test_an_envelope_whose_pdf_nobody_signed_is_not_called_valid(
    message: Path, test_ca: CaFixture, tmp_path: Path
) -> None:
    """The envelope's signature says who sent the file; the document's legal signature is on the PDF itself."""
    signed = tmp_path / "signed.edxml"
    assert runner.invoke(app, ["sign", "envelope", str(message), str(signed), *_pem_args(test_ca)]).exit_code == 0
    verified = runner.invoke(app, ["verify", str(signed), "--trust", str(test_ca.root_path), "--offline", "--json"])
    assert verified.exit_code == 2, verified.output
    report = json.loads(verified.stdout)
    assert report["indication"] == "INDETERMINATE"
    envelope, pdf = report["signatures"]
    assert envelope["indication"] == "TOTAL_PASSED"
    assert pdf["sub_indication"] == "SIGNED_DATA_NOT_FOUND" and "carries no signature" in pdf["reasons"][0]


def test_verify_exit_codes(message: Path, test_ca: CaFixture, tmp_path: Path) -> None:
    signed = tmp_path / "signed.edxml"
    runner.invoke(app, ["sign", "envelope", str(message), str(signed), *_pem_args(test_ca)])
    tampered = tmp_path / "tampered.edxml"
    tampered.write_bytes(signed.read_bytes().replace(b"BC-STC</edXML:CodeNotation>", b"BC-XYZ</edXML:CodeNotation>"))
    failed = runner.invoke(app, ["verify", str(tampered), "--trust", str(test_ca.root_path), "--offline"])
    assert failed.exit_code == 1
    assert "HASH_FAILURE" in failed.output
    assert "MessageHeader was changed after signing" in failed.output

    from tests.signing.pki_helpers import MiniPki

    other_root = tmp_path / "other-root.pem"
    from cryptography.hazmat.primitives.serialization import Encoding

    other_root.write_bytes(MiniPki.create("Other").root.public_bytes(Encoding.PEM))
    unknown = runner.invoke(app, ["verify", str(signed), "--trust", str(other_root), "--offline"])
    assert unknown.exit_code == 2
    assert "NO_CERTIFICATE_CHAIN_FOUND" in unknown.output

    unsigned = runner.invoke(app, ["verify", str(message), "--trust", str(test_ca.root_path), "--offline"])
    assert unsigned.exit_code == 1
    assert "not signed" in unsigned.output


def test_pkcs12_passphrase_comes_from_the_environment(
    sealed_message: Path, test_ca: CaFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = sealed_message
    bundle = tmp_path / "org.p12"
    bundle.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"org", test_ca.rsa.key, test_ca.rsa.cert, [test_ca.issuing], BestAvailableEncryption(b"m4t-kh4u")
        )
    )
    signed = tmp_path / "signed.edxml"
    missing = runner.invoke(app, ["sign", "envelope", str(message), str(signed), "--pkcs12", str(bundle)])
    assert missing.exit_code == 1
    assert "passphrase" in missing.output
    monkeypatch.setenv("ORG_P12_PASS", "wrong")
    wrong = runner.invoke(
        app,
        ["sign", "envelope", str(message), str(signed), "--pkcs12", str(bundle), "--passphrase-env", "ORG_P12_PASS"],
    )
    assert wrong.exit_code == 1
    assert "wrong" not in wrong.output.replace("wrong passphrase", "")  # the secret itself is never printed
    monkeypatch.setenv("ORG_P12_PASS", "m4t-kh4u")
    ok = runner.invoke(
        app,
        ["sign", "envelope", str(message), str(signed), "--pkcs12", str(bundle), "--passphrase-env", "ORG_P12_PASS"],
    )
    assert ok.exit_code == 0, ok.output
    assert runner.invoke(app, ["verify", str(signed), "--trust", str(test_ca.root_path), "--offline"]).exit_code == 0


@pytest.fixture
def cached_keys_closed() -> Iterator[None]:
    """The CLI keeps keys in the process-wide cache (as the node does); close them so the token is free."""
    yield
    from signing import keys

    keys.KEYS.close()


@pytest.mark.usefixtures("cached_keys_closed")
def test_sign_with_a_token(
    sealed_message: Path,
    softhsm_token: SoftHsmToken,
    test_ca: CaFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = sealed_message
    monkeypatch.setenv("TOKEN_PIN", softhsm_token.pin)
    token_args = [
        "--pkcs11-module",
        str(softhsm_token.module),
        "--token",
        softhsm_token.token_label,
        "--key-label",
        softhsm_token.rsa_label,
        "--chain",
        str(softhsm_token.chain),
        "--passphrase-env",
        "TOKEN_PIN",
    ]
    signed = tmp_path / "signed.edxml"
    result = runner.invoke(app, ["sign", "envelope", str(message), str(signed), *token_args])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["verify", str(signed), "--trust", str(test_ca.root_path), "--offline"]).exit_code == 0

    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(sample_pdf("token"))
    signed_pdf = tmp_path / "signed.pdf"
    result = runner.invoke(app, ["sign", "pdf", str(pdf), str(signed_pdf), "--role", "organisation", *token_args])
    assert result.exit_code == 0, result.output
    verified = runner.invoke(app, ["verify", str(signed_pdf), "--trust", str(test_ca.root_path), "--offline"])
    assert verified.exit_code == 0, verified.output
    assert "organisation seal" in verified.output


def test_sign_pdf_roles_and_bad_role(test_ca: CaFixture, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(sample_pdf("roles"))
    step1, step2 = tmp_path / "s1.pdf", tmp_path / "s2.pdf"
    assert (
        runner.invoke(app, ["sign", "pdf", str(pdf), str(step1), "--role", "signer", *_pem_args(test_ca)]).exit_code
        == 0
    )
    assert runner.invoke(app, ["sign", "pdf", str(step1), str(step2), *_pem_args(test_ca)]).exit_code == 0
    report = json.loads(
        runner.invoke(app, ["verify", str(step2), "--trust", str(test_ca.root_path), "--offline", "--json"]).stdout
    )
    assert [s["role"] for s in report["signatures"]] == ["signer", "organisation"]
    bad = runner.invoke(app, ["sign", "pdf", str(pdf), str(step1), "--role", "boss", *_pem_args(test_ca)])
    assert bad.exit_code == 1
    assert "--role" in bad.output


def test_an_envelope_with_a_signed_pdf_reports_both(test_ca: CaFixture, tmp_path: Path) -> None:
    from signing.keys import load_pem
    from signing.pdf import PdfSigningKey, sign_pdf

    key = load_pem(test_ca.rsa.key_path, test_ca.rsa.cert_path, test_ca.chain_path)
    report = sample_monthly_report()
    signed_pdf = sign_pdf(report.attachments[0].data, PdfSigningKey(key))
    message = report.model_copy(
        update={"attachments": (report.attachments[0].model_copy(update={"data": signed_pdf}),)}
    )
    path = tmp_path / "with-pdf.edxml"
    path.write_bytes(build_message(message))
    signed = tmp_path / "signed.edxml"
    assert runner.invoke(app, ["sign", "envelope", str(path), str(signed), *_pem_args(test_ca)]).exit_code == 0
    result = runner.invoke(app, ["verify", str(signed), "--trust", str(test_ca.root_path), "--offline", "--json"])
    assert result.exit_code == 0, result.output
    ids = [s["id"] for s in json.loads(result.stdout)["signatures"]]
    assert ids == ["envelope", "attachment:bao-cao-ngan-sach-2026-10.pdf#Organisation1"]


@pytest.fixture
def dev_pki(tmp_path: Path) -> Iterator[tuple[DevPki, RunningResponders]]:
    """The dev PKI with its OCSP, CRL and timestamp responders running (a PKI of its own: the test stops them)."""
    with serve_dev_pki(tmp_path / "pki", port=0) as responders:
        yield (
            create_dev_pki(tmp_path / "pki", [(ORGAN, "Sở Tài chính tỉnh Nghệ An")], base_url=responders.url),
            responders,
        )


def _p12_args(pki: DevPki) -> list[str]:
    p12 = pki.organ(ORGAN).organisation.p12_path
    assert p12 is not None
    return ["--pkcs12", str(p12), "--passphrase-file", str(pki.passphrase_path)]


def test_sign_pdf_long_term_verifies_as_b_lt_offline(dev_pki: tuple[DevPki, RunningResponders], tmp_path: Path) -> None:
    pki, responders = dev_pki
    pdf, signed = tmp_path / "report.pdf", tmp_path / "report-lt.pdf"
    pdf.write_bytes(sample_pdf("long term"))
    root = str(pki.root.path)
    args = ["sign", "pdf", str(pdf), str(signed), *_p12_args(pki), "--tsa", pki.urls.tsa, "--long-term"]
    result = runner.invoke(app, [*args, "--trust", root])
    assert result.exit_code == 0, result.output
    assert "B-LT" in result.output

    responders.stop()  # no network: only what the PDF carries
    verified = runner.invoke(
        app, ["verify", str(signed), "--trust", root, "--offline", "--revocation", "require", "--json"]
    )
    assert verified.exit_code == 0, verified.output
    (signature,) = json.loads(verified.stdout)["signatures"]
    assert signature["indication"] == "TOTAL_PASSED" and signature["level"] == "B-LT"
    assert signature["validation_time_source"] == "timestamp"

    # without the responders, revocation data cannot be fetched: nothing is signed, and the error says why
    again = tmp_path / "again.pdf"
    failed = runner.invoke(app, [*args[:3], str(again), *args[4:], "--trust", root])
    assert failed.exit_code == 1 and not again.exists()
    assert "long term (B-LT)" in failed.output and "no revocation information" in failed.output


def test_sign_pdf_long_term_fails_clearly_without_revocation_data(
    dev_pki: tuple[DevPki, RunningResponders], test_ca: CaFixture, tmp_path: Path
) -> None:
    """A chain whose certificates name no OCSP responder or CRL cannot be made B-LT: said, nothing written."""
    pki, _ = dev_pki
    pdf, signed = tmp_path / "report.pdf", tmp_path / "report-lt.pdf"
    pdf.write_bytes(sample_pdf("no revocation data"))
    base = ["sign", "pdf", str(pdf), str(signed), *_pem_args(test_ca), "--tsa", pki.urls.tsa, "--long-term"]
    roots = ["--trust", str(test_ca.root_path), "--trust", str(pki.root.path)]
    result = runner.invoke(app, [*base, *roots])
    assert result.exit_code == 1, result.output
    assert "long term (B-LT)" in result.output and "revocation" in result.output
    assert not signed.exists()

    no_tsa = runner.invoke(app, [*base[:-3], "--long-term", *roots])
    assert no_tsa.exit_code == 1 and "--tsa" in no_tsa.output
    no_trust = runner.invoke(app, base)
    assert no_trust.exit_code == 1 and "--trust" in no_trust.output
    help_text = runner.invoke(app, ["sign", "pdf", "--help"]).output
    assert "--long-term" in help_text and "revocation data" in " ".join(help_text.split())
