"""``lienthong sign …`` and ``lienthong verify``: signatures on envelopes and PDFs."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from node._private.report_render import render_report
from signing.errors import SigningError

app = typer.Typer(
    help="Sign edXML envelopes and PDFs (keys from PEM, PKCS#12 or a PKCS#11 token).", no_args_is_help=True
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

KeyOpt = Annotated[Path | None, typer.Option("--key", help="Private key (PEM).")]
CertOpt = Annotated[Path | None, typer.Option("--cert", help="Certificate (PEM) of the key.")]
ChainOpt = Annotated[Path | None, typer.Option("--chain", help="Intermediate certificates (PEM) to send along.")]
P12Opt = Annotated[Path | None, typer.Option("--pkcs12", help="PKCS#12 file holding key, certificate and chain.")]
PassEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--passphrase-env", help="Environment variable holding the passphrase or PIN (never given on the command line)."
    ),
]
PassFileOpt = Annotated[Path | None, typer.Option("--passphrase-file", help="File holding the passphrase or PIN.")]
ModuleOpt = Annotated[Path | None, typer.Option("--pkcs11-module", help="PKCS#11 module (.so) of the token.")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="PKCS#11 token label.")]
KeyLabelOpt = Annotated[str | None, typer.Option("--key-label", help="Label of the key on the token.")]
TsaOpt = Annotated[str | None, typer.Option("--tsa", help="Timestamp authority URL (XAdES-T / PAdES B-T).")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(Text.assemble(("error: ", "red"), message))
    return typer.Exit(code)


def _load_key(
    key: Path | None,
    cert: Path | None,
    chain: Path | None,
    pkcs12: Path | None,
    passphrase_env: str | None,
    passphrase_file: Path | None,
    module: Path | None,
    token: str | None,
    key_label: str | None,
) -> Any:
    from signing import keys

    passphrase = None
    if passphrase_env:
        passphrase = keys.Passphrase.from_env(passphrase_env)
    elif passphrase_file:
        passphrase = keys.Passphrase.from_file(passphrase_file)
    try:
        if module is not None:
            if not (token and key_label and passphrase):
                raise _fail("a PKCS#11 key needs --token, --key-label and the PIN via --passphrase-env/-file")
            return keys.load_pkcs11(module, token, key_label, passphrase, cert=cert, chain=chain)
        if pkcs12 is not None:
            if passphrase is None:
                raise _fail("a PKCS#12 file needs its passphrase via --passphrase-env or --passphrase-file")
            return keys.load_pkcs12(pkcs12, passphrase)
        if key is None or cert is None:
            raise _fail("give --key and --cert, or --pkcs12, or --pkcs11-module/--token/--key-label")
        return keys.load_pem(key, cert, chain, passphrase)
    except SigningError as e:
        raise _fail(str(e)) from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise _fail(f"cannot read {path}: {e.strerror}", 2) from None


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as e:
        raise _fail(f"cannot write {path}: {e.strerror}", 2) from None


@app.command("envelope")
def sign_envelope_command(
    input: Annotated[Path, typer.Argument(help="The unsigned .edxml message.")],
    output: Annotated[Path, typer.Argument(help="Where to write the signed message.")],
    key: KeyOpt = None,
    cert: CertOpt = None,
    chain: ChainOpt = None,
    pkcs12: P12Opt = None,
    passphrase_env: PassEnvOpt = None,
    passphrase_file: PassFileOpt = None,
    pkcs11_module: ModuleOpt = None,
    token: TokenOpt = None,
    key_label: KeyLabelOpt = None,
    tsa: TsaOpt = None,
) -> None:
    """Add the sending organisation's signature (XAdES; XAdES-T with --tsa) to an edXML envelope."""
    from signing.envelope import sign_envelope
    from signing.timestamps import HttpTimestamper

    signing_key = _load_key(key, cert, chain, pkcs12, passphrase_env, passphrase_file, pkcs11_module, token, key_label)
    try:
        signed = sign_envelope(_read(input), signing_key, timestamper=HttpTimestamper(tsa) if tsa else None)
    except SigningError as e:
        raise _fail(str(e)) from None
    _write(output, signed)
    err.print(Text(f"signed {output} ({len(signed):,} bytes) as {signing_key.certificate.subject.rfc4514_string()}"))


@app.command("pdf")
def sign_pdf_command(
    input: Annotated[Path, typer.Argument(help="The PDF to sign.")],
    output: Annotated[Path, typer.Argument(help="Where to write the signed PDF.")],
    key: KeyOpt = None,
    cert: CertOpt = None,
    chain: ChainOpt = None,
    pkcs12: P12Opt = None,
    passphrase_env: PassEnvOpt = None,
    passphrase_file: PassFileOpt = None,
    pkcs11_module: ModuleOpt = None,
    token: TokenOpt = None,
    key_label: KeyLabelOpt = None,
    tsa: TsaOpt = None,
    role: Annotated[
        str,
        typer.Option(
            help="signer (handwritten image), organisation (red seal), copy (electronic copy, top right of page 1)."
        ),
    ] = "organisation",
    image: Annotated[Path | None, typer.Option(help="PNG of the handwritten signature or the seal.")] = None,
    organisation_name: Annotated[str, typer.Option(help="Printed with the seal; default: the certificate's O.")] = "",
    long_term: Annotated[
        bool,
        typer.Option(
            "--long-term",
            help="PAdES B-LT: validate the signer's certificate chain against --trust now and embed its OCSP "
            "responses and CRLs (and the timestamp authority's) in the PDF (its DSS), so that it can be verified "
            "offline and after the certificate expires. Needs --tsa and --trust, and network access to the OCSP "
            "responders and CRL addresses the certificates name: fails, signing nothing, if revocation data "
            "cannot be fetched for every certificate of the chain.",
        ),
    ] = False,
    trust: Annotated[
        list[Path] | None,
        typer.Option("--trust", help="With --long-term: trusted root certificate(s), PEM. Repeatable."),
    ] = None,
) -> None:
    """Add a PAdES signature to a PDF (B-B; B-T with --tsa; B-LT with --tsa --long-term). Earlier signatures stay
    valid."""
    from signing.pdf import PdfSigningKey, PdfSignOptions, SignatureRole, sign_pdf
    from signing.timestamps import HttpTimestamper
    from signing.trust import TrustStore

    try:
        pdf_role = SignatureRole(role)
    except ValueError:
        raise _fail(f"--role must be signer, organisation or copy, not {role!r}") from None
    store = None
    if long_term:
        if not tsa:
            raise _fail("--long-term (B-LT) needs --tsa: B-LT is a timestamped signature with its validation data")
        if not trust:
            raise _fail("--long-term needs --trust ROOT.pem: the chain whose revocation data is embedded ends there")
        try:
            store = TrustStore.from_files(trust, revocation="require", allow_fetching=True)
        except SigningError as e:
            raise _fail(str(e)) from None
    elif trust:
        raise _fail("--trust is for --long-term")
    signing_key = _load_key(key, cert, chain, pkcs12, passphrase_env, passphrase_file, pkcs11_module, token, key_label)
    options = PdfSignOptions(role=pdf_role, image=_read(image) if image else None, organisation_name=organisation_name)
    try:
        signed = sign_pdf(
            _read(input),
            PdfSigningKey(signing_key),
            options,
            timestamper=HttpTimestamper(tsa).pyhanko if tsa else None,
            long_term=store,
        )
    except SigningError as e:
        raise _fail(str(e)) from None
    _write(output, signed)
    level = "B-LT" if store is not None else "B-T" if tsa else "B-B"
    err.print(Text(f"signed {output} ({len(signed):,} bytes, {pdf_role.value}, {level})"))


def verify(
    file: Annotated[Path, typer.Argument(help="An .edxml envelope (its PDFs are checked too) or a PDF.")],
    trust: Annotated[list[Path], typer.Option("--trust", help="Trusted root certificate(s), PEM. Repeatable.")],
    intermediate: Annotated[list[Path] | None, typer.Option(help="Extra intermediate certificates, PEM.")] = None,
    at: Annotated[
        datetime | None,
        typer.Option("--at", help="Validate at this time (ISO 8601) instead of now or the timestamp's time."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    offline: Annotated[bool, typer.Option(help="Do not fetch OCSP responses or CRLs.")] = False,
    revocation: Annotated[str, typer.Option(help="soft-fail, hard-fail or require.")] = "soft-fail",
) -> None:
    """Verify every signature. Exit 0 when all pass, 1 when one failed, 2 when one is indeterminate."""
    from signing.envelope import verify_envelope
    from signing.pdf import verify_pdf, verify_pdf_document
    from signing.trust import TrustStore

    if revocation not in ("soft-fail", "hard-fail", "require"):
        raise _fail("--revocation must be soft-fail, hard-fail or require", 2)
    try:
        store = TrustStore.from_files(trust, intermediate or (), revocation=revocation, allow_fetching=not offline)
    except SigningError as e:
        raise _fail(str(e), 2) from None
    moment = at if at is None or at.tzinfo else at.astimezone()
    data = _read(file)
    if data.lstrip()[:5] == b"%PDF-" or b"%PDF-" in data[:1024]:
        report = verify_pdf_document(data, store, name=file.name, at=moment)
    else:
        report = verify_envelope(
            data,
            store,
            at=moment,
            name=file.name,
            verify_pdf=lambda name, pdf: verify_pdf(name, pdf, store, at=moment),
        ).report
    if as_json:
        sys.stdout.write(
            json.dumps(
                report.model_dump(mode="json") | {"indication": report.indication.value}, ensure_ascii=False, indent=2
            )
            + "\n"
        )
    else:
        out.print(render_report(report))
    raise typer.Exit(report.exit_code)
