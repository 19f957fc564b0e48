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


def test_a_message_shown_by_edxml_show_cannot_reverse_or_break_its_lines() -> None:
    """``lienthong edxml show`` prints a received message's subject and names: text from the sender."""
    import io

    from rich.console import Console

    from node._private.render import render
    from node.samples import sample_monthly_report
    from schemas import build_message, parse_message

    message = sample_monthly_report()
    header = message.header.model_copy(update={"subject": "Báo cáo \u202egnờưht\u202c\nTrạng thái: ĐÃ DUYỆT"})
    parsed = parse_message(build_message(message.model_copy(update={"header": header})))
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(render(parsed))
    shown = out.getvalue()
    assert "\u202e" not in shown and "\\u202e" in shown
    assert "\\nTrạng thái: ĐÃ DUYỆT" in shown  # on the subject's own line, not a line of its own


def test_revocation_evidence_is_dated_in_vietnam_time_with_the_revocation_moment() -> None:
    """Every other time in the report is Vietnam time with its offset; the OCSP/CRL times were UTC without
    one (a response issued at 21:06 in Hà Nội read "14:06"), and a revoked certificate did not say since when."""
    from signing.report import RevocationEvidence

    revoked = SignatureReport(
        id="envelope",
        format="XAdES",
        indication=Indication.TOTAL_FAILED,
        sub_indication=SubIndication.REVOKED,
        revocation=(
            RevocationEvidence(
                kind="ocsp",
                certificate_serial="54de",
                status="revoked",
                issued_at=datetime(2026, 11, 23, 14, 6, 50, tzinfo=UTC),
                revoked_at=datetime(2026, 11, 20, 2, 0, tzinfo=UTC),
            ),
        ),
    )
    report = VerificationReport(
        document="x.edxml", document_sha256="0" * 64, kind="edxml", verified_at=datetime.now(UTC), signatures=(revoked,)
    )
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(render_report(report))
    shown = out.getvalue()
    assert "issued 2026-11-23T21:06:50+07:00" in shown
    assert "revoked 2026-11-20T09:00:00+07:00" in shown
