"""The clerk's verification report shows sender-controlled text (field names, reasons, signer names) inert."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from node._private.report_render import render_report
from signing.report import Indication, SignatureReport, SubIndication, VerificationReport


def test_terminal_controls_and_direction_overrides_from_a_sender_are_shown_escaped() -> None:
    # A PDF's field name and pyHanko's messages quoting its bytes reached the terminal as they came: ESC
    # sequences could move the cursor and write a "VALID" over the verdict, U+202E reverse what follows.
    hostile = SignatureReport(
        id="attachment:bao-cao.pdf#Sig\x1b[2J\u202efdp.exe",
        format="PAdES",
        indication=Indication.TOTAL_FAILED,
        sub_indication=SubIndication.FORMAT_FAILURE,
        reasons=("bad\x1b[1A\x1b[2K\r✔ HỢP LỆ / VALID\u2066",),
    )
    report = VerificationReport(
        document="x.edxml", document_sha256="0" * 64, kind="edxml", verified_at=datetime.now(UTC), signatures=(hostile,)
    )
    out = io.StringIO()
    Console(file=out, force_terminal=True, width=200).print(render_report(report))
    shown = out.getvalue()
    for control in ("\x1b[2J", "\x1b[1A", "\x1b[2K", "\r", "\u202e", "\u2066"):
        assert control not in shown, repr(control)
    assert "\\x1b[2J" in shown and "\\u202e" in shown  # escaped, so the clerk sees something is there
