"""``lienthong pki …``: the development PKI (certificates, CRL, OCSP and timestamp responders for demos and tests)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from signing.devpki import DEFAULT_BASE_URL, DevPki, KeyAlgorithm, main_init, serve_dev_pki
from signing.errors import DevPkiError

app = typer.Typer(
    help="Development PKI — NOT FOR PRODUCTION: certificates for agencies, a CRL, OCSP and timestamp responders.",
    no_args_is_help=True,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(Text.assemble(("error: ", "red"), message))
    return typer.Exit(code)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Directory to write the PKI into (created if missing).")],
    organ: Annotated[
        list[str],
        typer.Option(
            "--organ",
            help="An agency as CODE=NAME (or CODE), e.g. '000.01.41.H41=Sở Tài chính tỉnh Nghệ An'. Repeat for more.",
        ),
    ],
    base_url: Annotated[
        str, typer.Option("--base-url", help="Where `lienthong pki serve` will answer; written into every certificate.")
    ] = DEFAULT_BASE_URL,
    key_algorithm: Annotated[
        str, typer.Option("--key-algorithm", help="rsa2048 or ecdsa-p256, for every key.")
    ] = "rsa2048",
    force: Annotated[bool, typer.Option("--force", help="Replace a dev PKI already in DIRECTORY.")] = False,
) -> None:
    """Create a root CA marked NOT FOR PRODUCTION, an issuing CA, and certificates for the given agencies."""
    if key_algorithm not in ("rsa2048", "ecdsa-p256"):
        raise _fail(f"key algorithm {key_algorithm!r} is not one of rsa2048, ecdsa-p256")
    algorithm: KeyAlgorithm = "ecdsa-p256" if key_algorithm == "ecdsa-p256" else "rsa2048"
    try:
        written = main_init(directory, organ, base_url=base_url, key_algorithm=algorithm, overwrite=force)
    except DevPkiError as e:
        raise _fail(str(e)) from None
    table = Table(title=f"Development PKI in {directory} — NOT FOR PRODUCTION", title_justify="left")
    table.add_column("what")
    table.add_column("file")
    for item in written:
        table.add_row(item.what, str(item.path))
    out.print(table)
    out.print(
        f"Keys (.key, .p12) are encrypted with the passphrase in {directory / 'passphrase.txt'}. "
        f"Start the responders with: lienthong pki serve {directory}"
    )


@app.command()
def revoke(
    directory: Annotated[Path, typer.Argument(help="The dev PKI's directory.")],
    label: Annotated[str, typer.Argument(help="Certificate label, e.g. organs/000.01.41.H41/signer (see pki.json).")],
    reason: Annotated[str, typer.Option(help="RFC 5280 reason, e.g. key_compromise, superseded.")] = "key_compromise",
) -> None:
    """Revoke a certificate: the CRL files are rewritten and a running `pki serve` answers REVOKED at once."""
    try:
        pki = DevPki.load(directory).revoke(label, reason=reason)
    except DevPkiError as e:
        raise _fail(str(e)) from None
    info = pki.certificates[label]
    out.print(Text(f"revoked {label} (serial {info.certificate().serial_number:x}) from {info.revoked_at}, {reason}"))


@app.command()
def serve(
    directory: Annotated[Path, typer.Argument(help="Directory of a dev PKI made by `lienthong pki init`.")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default: the one in the PKI's base URL; 0: any free port).")
    ] = None,
) -> None:
    """Serve OCSP, CRLs, CA certificates and RFC 3161 timestamps for the dev PKI until interrupted."""
    try:
        pki = DevPki.load(directory)
        responders = serve_dev_pki(directory, host=host, port=port)
    except DevPkiError as e:
        raise _fail(str(e)) from None
    with responders:
        out.print(f"Development PKI responders (NOT FOR PRODUCTION) listening on {responders.url}")
        for what, url in (
            ("OCSP", pki.urls.ocsp),
            ("timestamps", pki.urls.tsa),
            ("CRL", pki.urls.crl),
            ("root CRL", pki.urls.root_crl),
        ):
            out.print(f"  {what}: {url}")
        if pki.base_url != responders.url:
            err.print(
                Text.assemble(
                    ("warning: ", "yellow"),
                    f"the certificates point at {pki.base_url}, not at {responders.url}: "
                    "validators will not reach these responders",
                )
            )
        signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly under a service manager too
        try:
            while responders.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            out.print("stopping")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
