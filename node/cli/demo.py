"""``lienthong demo``: what the node does today, end to end, on this machine.

Until the exchange lands: a provincial finance department's monthly report is signed on the PDF (the
director, then the department's seal), packed as edXML, signed as an envelope (XAdES-T), written, read back,
and verified as the Ministry would — against a development PKI with live OCSP, CRL and TSA responders.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from node._private.render import render
from node._private.report_render import render_report
from node.samples import MINISTRY, SENDER, sample_monthly_report
from schemas import ParseMode, build_message, parse_message


def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its files.")] = Path("var/demo"),
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of results.")] = False,
) -> None:
    """Sign a monthly report (PDF and envelope), write it as edXML, read it back and verify it."""
    from signing.devpki import create_dev_pki, serve_dev_pki
    from signing.envelope import sign_envelope, verify_envelope
    from signing.pdf import PdfSigningKey, PdfSignOptions, SignatureRole, sign_pdf, verify_pdf
    from signing.report import CertificateInfo
    from signing.timestamps import HttpTimestamper

    console = Console(stderr=as_json)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def step(text: str) -> None:
        console.print(f"[bold cyan]{time.perf_counter() - started:6.2f}s[/] {text}", highlight=False)

    console.rule("[bold]Liên thông demo: a signed monthly report")
    with serve_dev_pki(workdir / "pki", port=0) as responders:
        pki = create_dev_pki(
            workdir / "pki",
            [(SENDER.organ_id, SENDER.organ_name), (MINISTRY.organ_id, MINISTRY.organ_name)],
            base_url=responders.url,
            overwrite=True,
        )
        step(f"Development PKI (NOT FOR PRODUCTION) in {pki.directory}, OCSP/CRL/TSA at {responders.url}")
        organ = pki.organ(SENDER.organ_id)
        director = PdfSigningKey(pki.signing_key(organ.signer.label))
        seal = pki.signing_key(organ.organisation.label)
        tsa = HttpTimestamper(pki.urls.tsa)

        report = sample_monthly_report(pdf_size=200_000)
        pdf = report.attachments[0].data
        pdf = sign_pdf(pdf, director, PdfSignOptions(role=SignatureRole.SIGNER))
        step(f"The director signs the report PDF ({CertificateInfo.of(organ.signer.certificate()).common_name})")
        pdf = sign_pdf(
            pdf, PdfSigningKey(seal), PdfSignOptions(role=SignatureRole.ORGANISATION), timestamper=tsa.pyhanko
        )
        step(f"{SENDER.organ_name} seals it: red seal over the signature, PAdES B-T")
        (workdir / "bao-cao-thang.pdf").write_bytes(pdf)

        message = report.model_copy(update={"attachments": (report.attachments[0].model_copy(update={"data": pdf}),)})
        envelope = sign_envelope(build_message(message), seal, timestamper=tsa)
        path = workdir / "bao-cao-thang.edxml"
        path.write_bytes(envelope)
        step(
            f"Packed as edXML and signed as an envelope (XAdES-T): {path} ({len(envelope):,} bytes, "
            f"sha256 {hashlib.sha256(envelope).hexdigest()[:16]}…)"
        )

        parsed = parse_message(path, mode=ParseMode.TOLERANT)
        step(f"The Ministry ({MINISTRY.organ_name}) reads it back:")
        console.print(render(parsed, source=str(path)))

        trust = pki.trust_store(revocation="hard-fail")
        result = verify_envelope(
            path.read_bytes(), trust, name=path.name, verify_pdf=lambda name, data: verify_pdf(name, data, trust)
        )
        step("…and verifies every signature, fetching OCSP responses from the responder:")
        console.print(render_report(result.report))

    same = result.message == message
    step(f"Signed content equals what was sent: {same}. Files are in {workdir}.")
    ok = same and result.report.exit_code == 0
    if as_json:
        sys.stdout.write(
            json.dumps(
                {
                    "file": str(path),
                    "bytes": len(envelope),
                    "round_trip": same,
                    "verified": result.report.exit_code == 0,
                    "signatures": [
                        {"id": s.id, "level": s.level, "indication": s.indication.value}
                        for s in result.report.signatures
                    ],
                },
                ensure_ascii=False,
            )
            + "\n"
        )
    if not ok:
        raise typer.Exit(1)
