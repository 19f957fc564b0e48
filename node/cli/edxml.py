"""``lienthong edxml``: build, show and validate edXML messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from node._private.render import render, summary_json
from node._private.spec import SpecError, load_spec
from schemas import (
    InvalidEdxmlError,
    ParsedMessage,
    ParseMode,
    UnreadableXmlError,
    UnsafeXmlError,
    build_message,
    parse_message,
)

app = typer.Typer(help="Build, show and validate edXML messages (QCVN 102:2016).", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def _say(console: Console, label: str, style: str, text: str) -> None:
    """Print ``label: text`` with only the label styled: file names and messages are never markup."""
    console.print(Text.assemble((f"{label}", style), " " if label else "", text))


@app.command()
def build(
    spec: Annotated[Path, typer.Argument(help="YAML spec: header fields, business block, attachment files.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the .edxml file.")],
) -> None:
    """Build an edXML message from a YAML spec (deterministic: the same spec gives the same bytes)."""
    try:
        message = load_spec(spec)
    except SpecError as e:
        _say(err, "error:", "red", str(e))
        raise typer.Exit(EXIT_INVALID) from None
    data = build_message(message)
    try:
        output.write_bytes(data)
    except OSError as e:
        _say(err, "error:", "red", f"cannot write {output}: {e.strerror}")
        raise typer.Exit(EXIT_UNREADABLE) from None
    kind = "document" if message.kind == "document" else "status"
    _say(err, "", "", f"wrote {output} ({len(data):,} bytes, {kind} message)")


def _parse(file: Path, mode: ParseMode) -> ParsedMessage:
    """Parse or exit with the right code and a message naming the problem and its place."""
    try:
        return parse_message(file, mode=mode)
    except OSError as e:
        _say(err, "unreadable:", "red", f"{file}: {e.strerror or e}")
        raise typer.Exit(EXIT_UNREADABLE) from None
    except UnsafeXmlError as e:
        _say(err, "refused:", "red", f"{file}: {e}")
        raise typer.Exit(EXIT_UNREADABLE) from None
    except UnreadableXmlError as e:
        _say(err, "unreadable:", "red", f"{file}: {e}")
        raise typer.Exit(EXIT_UNREADABLE) from None
    except InvalidEdxmlError as e:
        _say(err, "invalid:", "red", f"{file} ({mode.value} mode)")
        for location, problem in e.problems:
            where = f"{location}: " if location else ""
            _say(err, "", "", f"  {where}{problem}")
        raise typer.Exit(EXIT_INVALID) from None


@app.command()
def show(
    file: Annotated[Path, typer.Argument(help="An .edxml file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (attachments as size and SHA-256).")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Read in strict mode instead of tolerant.")] = False,
) -> None:
    """Show what a message says: sender, recipients, subject, attachments, route, warnings."""
    parsed = _parse(file, ParseMode.STRICT if strict else ParseMode.TOLERANT)
    if as_json:
        sys.stdout.write(json.dumps(summary_json(parsed), ensure_ascii=False, indent=2) + "\n")
    else:
        out.print(render(parsed, source=str(file)))


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="An .edxml file.")],
    strict: Annotated[
        bool, typer.Option("--strict", help="Our own form, checked against the XSDs; real-world quirks become errors.")
    ] = False,
) -> None:
    """Check a message. Exit 0 valid, 1 invalid (naming element and line), 2 unreadable or refused."""
    mode = ParseMode.STRICT if strict else ParseMode.TOLERANT
    parsed = _parse(file, mode)
    for w in parsed.warnings:
        _say(err, "warning:", "yellow", f"{w} [{w.code}]")
    _say(out, "valid", "green", f"{file} ({mode.value} mode, {parsed.message.kind} message)")
