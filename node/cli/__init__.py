"""The ``lienthong`` command line."""

from __future__ import annotations

import typer

from node.cli import archive_cmds, audit_cmds, demo, edxml, node_cmds, pki, signatures

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
app.command(name="init")(node_cmds.init)
app.command(name="serve")(node_cmds.serve)
app.command(name="register")(node_cmds.register)
app.command(name="send")(node_cmds.send)
app.command(name="status")(node_cmds.status)
app.command(name="answer")(node_cmds.answer)
app.command(name="recall")(node_cmds.recall)
app.command(name="inbox")(node_cmds.inbox)
app.add_typer(node_cmds.token_app, name="token")
app.add_typer(node_cmds.db_app, name="db")
app.add_typer(audit_cmds.app, name="audit")
app.add_typer(archive_cmds.app, name="archive")


def main() -> None:
    from rich.console import Console
    from rich.text import Text

    from node.errors import NodeError

    try:
        app()
    except NodeError as e:  # a configuration or state problem found late: say it, no traceback
        Console(stderr=True).print(Text.assemble(("error: ", "red"), str(e)))
        raise SystemExit(2) from None
