"""Sample messages and PDFs for the demo, the benchmarks and tests: a provincial department's monthly report."""

from __future__ import annotations

import zlib
from datetime import date, datetime

from schemas import (
    VIETNAM_TIME,
    Attachment,
    Business,
    Code,
    DocumentHeader,
    DocumentMessage,
    DocumentType,
    Organization,
    OtherInfo,
    PromulgationInfo,
    SignerInfo,
    StaffInfo,
    TraceHeader,
    make_document_id,
)

SENDER = Organization(
    organ_id="000.01.41.H41",
    organ_name="Sở Tài chính tỉnh Nghệ An",
    organization_in_charge="Ủy ban nhân dân tỉnh Nghệ An",
    organ_add="Số 18 Trường Thi, thành phố Vinh, Nghệ An",
    email="stc@nghean.gov.vn",
    telephone="0238 3844 270",
    website="https://stc.nghean.gov.vn",
)
MINISTRY = Organization(
    organ_id="000.00.00.G12",
    organ_name="Bộ Tài chính",
    organ_add="Số 28 Trần Xuân Soạn, Hà Nội",
    email="vanthu@mof.gov.vn",
)


def sample_pdf(text: str = "Báo cáo tháng", *, size: int = 0) -> bytes:
    """A valid one-page PDF; ``size`` pads it (with an incompressible stream) to about that many bytes."""
    ascii_text = text.encode("ascii", "replace").decode().replace("(", "[").replace(")", "]")
    content = f"BT /F1 18 Tf 72 760 Td ({ascii_text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>",
    ]
    if size > 2048:
        # Deterministic noise, compressed like real scans are: does not shrink when zipped again.
        noise = bytearray()
        seed = zlib.crc32(text.encode())
        while len(noise) < size - 1024:
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            noise += seed.to_bytes(4, "big")
        objects.append(b"<< /Length %d >>\nstream\n" % len(noise) + bytes(noise) + b"\nendstream")
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def sample_monthly_report(
    *,
    month: date = date(2026, 10, 1),
    pdf_size: int = 0,
    sender: Organization = SENDER,
    recipients: tuple[Organization, ...] = (MINISTRY,),
    code_number: str = "245",
) -> DocumentMessage:
    """The monthly budget report of a provincial finance department to the Ministry of Finance."""
    promulgated = date(month.year + (month.month == 12), month.month % 12 + 1, 16)
    notation = "BC-STC"
    document_id = make_document_id(sender.organ_id, promulgated, code_number, notation)
    period = f"tháng {month.month:02d}/{month.year}"
    return DocumentMessage(
        header=DocumentHeader(
            from_=sender,
            to=recipients,
            document_id=document_id,
            code=Code(code_number=code_number, code_notation=notation),
            promulgation_info=PromulgationInfo(place="Nghệ An", promulgation_date=promulgated),
            document_type=DocumentType(type=1, type_detail=7, type_name="Báo cáo"),
            subject=f"Báo cáo tình hình thực hiện dự toán ngân sách nhà nước {period}",
            content=f"Sở Tài chính báo cáo tình hình thu, chi ngân sách nhà nước {period} (số liệu đến ngày 14).",
            signer_info=SignerInfo(competence="KT. GIÁM ĐỐC", position="Phó Giám đốc", full_name="Nguyễn Văn An"),
            due_date=date(promulgated.year, promulgated.month, 20),
            other_info=OtherInfo(
                sphere_of_promulgation="Văn bản hành chính", typer_notation="NVA", promulgation_amount=2, page_amount=3
            ),
            to_places=("Như trên", "Lưu: VT, NS"),
        ),
        business=Business(
            document_id=document_id,
            staff_info=StaffInfo(
                department="Văn phòng Sở", staff="Trần Thị Bình", email="binh.tt@nghean.gov.vn", mobile="0912 345 678"
            ),
        ),
        trace=(
            TraceHeader(
                organ_id=sender.organ_id,
                timestamp=datetime(promulgated.year, promulgated.month, 16, 9, 30, tzinfo=VIETNAM_TIME),
            ),
        ),
        attachments=(
            Attachment(
                content_id="1",
                name=f"bao-cao-ngan-sach-{month:%Y-%m}.pdf",
                content_type="application/pdf",
                description=f"Báo cáo {period}",
                data=sample_pdf(f"Bao cao ngan sach {month:%m/%Y}", size=pdf_size),
            ),
        ),
    )
