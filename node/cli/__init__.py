"""The ``lienthong`` command line."""

from __future__ import annotations

import typer

from node.cli import demo, edxml, pki, signatures

app = typer.Typer(
    name="lienthong",
    help="Liên thông: exchange signed edXML documents between state agencies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(edxml.app, name="edxml")
app.add_typer(signatures.app, name="sign")
app.add_typer(pki.app, name="pki")
app.command(name="verify")(signatures.verify)
app.command(name="demo")(demo.demo)


def main() -> None:
    app()
