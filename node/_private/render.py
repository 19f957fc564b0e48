"""Human and JSON views of a parsed message, shared by ``lienthong edxml show`` and the demo."""

from __future__ import annotations

import hashlib
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from node._private.text import inert
from schemas import DocumentMessage, ParsedMessage, StatusCode, StatusMessage, format_timestamp

_STATUS_VI = {
    StatusCode.ARRIVED: "đã đến",
    StatusCode.REFUSED: "từ chối tiếp nhận",
    StatusCode.REGISTERED: "đã tiếp nhận",
    StatusCode.ASSIGNED: "phân công",
    StatusCode.IN_PROGRESS: "đang xử lý",
    StatusCode.DONE: "hoàn thành",
    StatusCode.RECALL_REQUESTED: "lấy lại",
    StatusCode.RECALL_AGREED: "đồng ý cập nhật/lấy lại",
    StatusCode.RECALL_REFUSED: "từ chối cập nhật/lấy lại",
}
_BUSINESS_VI = {0: "văn bản mới", 1: "thu hồi", 2: "cập nhật", 3: "thay thế"}


def status_label(code: StatusCode) -> str:
    return f"{code.code} {_STATUS_VI[code]} ({code.name.lower().replace('_', ' ')})"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError


def summary_json(parsed: ParsedMessage) -> dict[str, Any]:
    """The message as JSON-ready data; attachment bytes are replaced by size and SHA-256."""
    data = parsed.message.model_dump(mode="json", by_alias=True, exclude={"attachments"})
    if isinstance(parsed.message, DocumentMessage):
        data["attachments"] = [
            {
                "content_id": a.content_id,
                "name": a.name,
                "content_type": a.content_type,
                "description": a.description,
                "size": len(a.data),
                "sha256": hashlib.sha256(a.data).hexdigest(),
            }
            for a in parsed.message.attachments
        ]
    return {
        "mode": parsed.mode.value,
        "signature": parsed.signature.value,
        "warnings": [
            {
                "code": w.code,
                "message": w.message,
                "line": w.location.line if w.location else None,
                "path": w.location.path if w.location else None,
            }
            for w in parsed.warnings
        ],
        "message": data,
    }


def render(parsed: ParsedMessage, *, source: str = "") -> RenderableType:
    """A readable summary for a clerk: who, to whom, what, attachments, route, warnings."""
    m = parsed.message
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()

    def add_row(label: str, value: str) -> None:
        table.add_row(label, Text(inert(value)))  # message text is data: never Rich markup, never a control

    if source:
        add_row("File", source)
    if isinstance(m, DocumentMessage):
        h = m.header
        add_row(
            "Loại gói tin", f"văn bản — {_BUSINESS_VI[int(m.business.doc_type)]} ({m.business.doc_type.name.lower()})"
        )
        add_row("Từ (from)", f"{h.from_.organ_name} [{h.from_.organ_id}]")
        for to in h.to:
            add_row("Đến (to)", f"{to.organ_name} [{to.organ_id}]")
        add_row("Số, ký hiệu", f"{h.code.code_number}/{h.code.code_notation}")
        add_row("Ngày ban hành", f"{h.promulgation_info.place}, {h.promulgation_info.promulgation_date:%d/%m/%Y}")
        add_row("Trích yếu", h.subject)
        if h.signer_info.full_name:
            add_row(
                "Người ký", f"{h.signer_info.competence} {h.signer_info.position} {h.signer_info.full_name}".strip()
            )
        add_row("DocumentId", h.document_id)
        if h.due_date:
            add_row("Hạn xử lý", f"{h.due_date:%d/%m/%Y}")
        if m.business.reason:
            add_row("Lý do", m.business.reason)
        for a in m.attachments:
            digest = hashlib.sha256(a.data).hexdigest()[:16]
            add_row("Tệp đính kèm", f"{a.name} ({a.content_type}, {_size(len(a.data))}, sha256 {digest}…)")
    else:
        assert isinstance(m, StatusMessage)
        sh = m.header
        add_row("Loại gói tin", "trạng thái (status)")
        add_row("Từ (from)", f"{sh.from_.organ_name} [{sh.from_.organ_id}]")
        add_row("Trạng thái", status_label(sh.status_code))
        add_row("Cho văn bản", sh.response_for.document_id)
        if sh.description:
            add_row("Ghi chú", sh.description)
        add_row("Thời điểm", format_timestamp(sh.timestamp))
    for hop in m.trace:
        add_row("Lộ trình (trace)", f"{hop.organ_id} at {format_timestamp(hop.timestamp)}")
    add_row(
        "Chữ ký (signature)",
        {
            "none": "none (unsigned)",
            "xmldsig": "XMLDSig present (not verified here)",
            "legacy": "legacy placeholder (not a signature)",
        }[parsed.signature.value],
    )
    parts: list[RenderableType] = [table]
    for w in parsed.warnings:
        parts.append(Text(f"⚠ {w}", style="yellow"))
    return Group(*parts)
