"""Verification reports for people: what a clerk reads after ``lienthong verify``."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from node._private.text import inert
from schemas import VIETNAM_TIME
from signing.report import Indication, SignatureReport, VerificationReport

_VERDICT = {
    Indication.TOTAL_PASSED: ("✔ HỢP LỆ / VALID", "bold green"),
    Indication.TOTAL_FAILED: ("✘ KHÔNG HỢP LỆ / NOT VALID", "bold red"),
    Indication.INDETERMINATE: ("? CHƯA XÁC ĐỊNH / INDETERMINATE", "bold yellow"),
}
_WHAT = {"envelope": "Chữ ký số của cơ quan gửi trên gói tin (envelope signature)"}
_ROLE = {
    "signer": "người ký (signer)",
    "organisation": "cơ quan, tổ chức (organisation seal)",
    "copy": "bản sao điện tử (electronic copy)",
}


def _ict(moment: datetime) -> str:
    """Vietnam time to the second, the way documents state it: 2026-11-16T09:30:00+07:00."""
    return moment.astimezone(VIETNAM_TIME).replace(microsecond=0).isoformat()


def _title(sig: SignatureReport) -> str:
    if sig.id in _WHAT:
        return _WHAT[sig.id]
    if sig.id.startswith("attachment:"):
        name, _, field = sig.id.removeprefix("attachment:").partition("#")
        role = _ROLE.get(sig.role, "")
        return inert(f"Chữ ký trên tệp {name} — {field}") + (f", {role}" if role else "")
    return inert(sig.id)


def render_signature(sig: SignatureReport) -> RenderableType:
    verdict, style = _VERDICT[sig.indication]
    head = Text.assemble(
        (verdict, style), "  ", (_title(sig), "bold"), f"  [{sig.format}{' ' + sig.level if sig.level else ''}]"
    )
    table = Table.grid(padding=(0, 2))
    table.add_column(style="cyan", no_wrap=True)
    table.add_column()

    def row(label: str, value: str) -> None:
        table.add_row(f"  {label}", Text(inert(value)))

    if sig.sub_indication:
        row("Lý do (why)", f"{sig.sub_indication.value}: " + "; ".join(sig.reasons))
    elif sig.reasons:
        row("Ghi chú", "; ".join(sig.reasons))
    if sig.signer:
        who = sig.signer.common_name + (f" [{sig.signer.organ_code}]" if sig.signer.organ_code else "")
        row("Người/cơ quan ký", who)
        row(
            "Chứng thư số",
            f"serial {sig.signer.serial}, valid {sig.signer.not_before:%Y-%m-%d} → {sig.signer.not_after:%Y-%m-%d}",
        )
    if sig.claimed_signing_time:
        row("Thời gian ký", f"{_ict(sig.claimed_signing_time)} (claimed by the signer)")
    if sig.timestamp:
        ok = "valid" if sig.timestamp.valid else f"NOT valid: {sig.timestamp.problem}"
        row("Dấu thời gian", f"{_ict(sig.timestamp.time)} by {sig.timestamp.tsa} ({ok})")
    if sig.signed_parts:
        row("Phạm vi ký", ", ".join(sig.signed_parts))
    if sig.chain:
        row("Chuỗi chứng thư", " → ".join(c.common_name for c in sig.chain))
    for ev in sig.revocation:
        row(
            "Thu hồi",
            f"{ev.kind.upper()}: {ev.status} for serial {ev.certificate_serial}"
            + (f", revoked {_ict(ev.revoked_at)}" if ev.revoked_at else "")
            + (f", issued {_ict(ev.issued_at)}" if ev.issued_at else ""),
        )
    for rev in sig.revisions_after:
        mark = "allowed" if rev.allowed else "NOT allowed"
        row("Sửa đổi sau ký", f"revision {rev.index + 1}: {rev.description} ({rev.modification_level}, {mark})")
    if sig.validation_time:
        source = {"requested": "the time asked for", "timestamp": "the time the timestamp proves", "current": "now"}[
            sig.validation_time_source
        ]
        row("Kiểm tra tại", f"{_ict(sig.validation_time)} ({source})")
    return Group(head, table)


def render_report(report: VerificationReport) -> RenderableType:
    parts: list[RenderableType] = [
        Text(f"Kết quả kiểm tra chữ ký số — {inert(report.document)}", style="bold underline")
    ]
    if not report.signatures:
        parts.append(Text("✘ Không có chữ ký số nào / no signature found", style="bold red"))
    parts.extend(render_signature(s) for s in report.signatures)
    verdict, style = _VERDICT[report.indication]
    parts.append(Text.assemble("Tổng hợp (overall): ", (verdict, style)))
    return Group(*parts)
