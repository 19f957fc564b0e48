"""``lienthong demo``: what the node does, end to end, on this machine.

Until the exchange lands this is an edXML round trip: a provincial finance department's monthly
report with a PDF is built, written, parsed back and shown.
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
from node.samples import sample_monthly_report
from schemas import ParseMode, build_message, parse_message


def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its files.")] = Path("var/demo"),
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of results.")] = False,
) -> None:
    """Build a signed-report-to-be, write it as edXML, read it back, and show what a recipient would see."""
    console = Console(stderr=as_json)
    workdir.mkdir(parents=True, exist_ok=True)
    message = sample_monthly_report(pdf_size=200_000)
    console.rule("[bold]Liên thông demo: edXML round trip")
    console.print(
        f"1. Sở Tài chính Nghệ An prepares its monthly report for {message.header.to[0].organ_name} "
        f"with a {len(message.attachments[0].data):,}-byte PDF."
    )
    started = time.perf_counter()
    data = build_message(message)
    built = time.perf_counter()
    path = workdir / "bao-cao-thang.edxml"
    path.write_bytes(data)
    console.print(
        f"2. Built edXML: {path} ({len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}…) "
        f"in {1000 * (built - started):.1f} ms."
    )
    parsed = parse_message(path, mode=ParseMode.STRICT)
    parsed_at = time.perf_counter()
    console.print(
        f"3. Parsed it back in strict mode (validated against schemas/edxml/*.xsd) in "
        f"{1000 * (parsed_at - built):.1f} ms:"
    )
    console.print(render(parsed, source=str(path)))
    same_model = parsed.message == message
    same_bytes = build_message(parsed.message) == data
    ok = same_model and same_bytes
    console.print(
        f"4. Round trip: model equal [{'green' if same_model else 'red'}]{same_model}[/], "
        f"rebuilt bytes identical [{'green' if same_bytes else 'red'}]{same_bytes}[/]."
    )
    if as_json:
        sys.stdout.write(
            json.dumps(
                {"file": str(path), "bytes": len(data), "round_trip": ok, "warnings": [w.code for w in parsed.warnings]}
            )
            + "\n"
        )
    if not ok:
        raise typer.Exit(1)
