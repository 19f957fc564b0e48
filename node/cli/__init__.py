"""The ``lienthong`` command line."""

from __future__ import annotations

import typer

from node.cli import demo, edxml

app = typer.Typer(
    name="lienthong",
    help="Liên thông: exchange signed edXML documents between state agencies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(edxml.app, name="edxml")
app.command(name="demo")(demo.demo)


def main() -> None:
    app()
