"""Archive search latency: an SQLite archive index of realistic entries, searched the ways archivists do.

Builds, in a temporary directory, the default embedded setup (SQLite file, WAL) holding ``--entries`` index
rows (100,000 by default) shaped like a ministry's exchange archive: reports and official letters from the
departments of the 63 provinces, subjects in Vietnamese built from ~1,220 reporting regimes, monthly,
quarterly, half-year and yearly periods over six years, status messages, several recipients. Rows are
bulk-inserted through :meth:`storage.ArchiveIndex.add_many` (the same code path the node uses).

Then it runs ``--queries`` searches through :meth:`storage.ArchiveIndex.search`, interleaving the kinds:

* ``agency_period``: one agency's reports for one period;
* ``document_id``: one document by its DocumentId;
* ``code``: by số/ký hiệu, typed without accents in lower case;
* ``text``: one to three words of the subject, without accents;
* ``text_date``: words and a one-year date range;
* ``sender_date``: one department's entries over a quarter;
* ``recipient``: documents sent to one organisation;
* ``type_status``: a document type and a latest status;
* ``page``: the next page (keyset cursor) while paging through one agency's whole archive, 50 at a time.

Every search is timed on its own (wall clock, first page including the total count). Human-readable lines
come while it runs; the last line is exactly one JSON object.

    .venv/bin/python benchmarks/archive.py                             # full run: 100,000 entries
    .venv/bin/python benchmarks/archive.py --entries 2000 --queries 90 # smoke run (the test suite does this)
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy

from storage import ArchiveIndex, ArchiveQuery, ArchiveRecord
from storage._private.archive_text import words
from storage.db import create_schema, make_engine

TARGET_P95_MS = 50.0
BATCH = 5_000

PROVINCES = (
    "An Giang", "Bà Rịa - Vũng Tàu", "Bắc Giang", "Bắc Kạn", "Bạc Liêu", "Bắc Ninh", "Bến Tre", "Bình Định",
    "Bình Dương", "Bình Phước", "Bình Thuận", "Cà Mau", "Cần Thơ", "Cao Bằng", "Đà Nẵng", "Đắk Lắk", "Đắk Nông",
    "Điện Biên", "Đồng Nai", "Đồng Tháp", "Gia Lai", "Hà Giang", "Hà Nam", "Hà Nội", "Hà Tĩnh", "Hải Dương",
    "Hải Phòng", "Hậu Giang", "Hòa Bình", "Hưng Yên", "Khánh Hòa", "Kiên Giang", "Kon Tum", "Lai Châu",
    "Lâm Đồng", "Lạng Sơn", "Lào Cai", "Long An", "Nam Định", "Nghệ An", "Ninh Bình", "Ninh Thuận", "Phú Thọ",
    "Phú Yên", "Quảng Bình", "Quảng Nam", "Quảng Ngãi", "Quảng Ninh", "Quảng Trị", "Sóc Trăng", "Sơn La",
    "Tây Ninh", "Thái Bình", "Thái Nguyên", "Thanh Hóa", "Thừa Thiên Huế", "Tiền Giang", "TP. Hồ Chí Minh",
    "Trà Vinh", "Tuyên Quang", "Vĩnh Long", "Vĩnh Phúc", "Yên Bái",
)  # fmt: skip
DEPARTMENTS = (("Sở Tài chính", "STC"), ("Sở Kế hoạch và Đầu tư", "SKHĐT"), ("Sở Y tế", "SYT"),
               ("Sở Giáo dục và Đào tạo", "SGDĐT"), ("Sở Nội vụ", "SNV"), ("Sở Nông nghiệp và Phát triển nông thôn",
               "SNN"), ("Sở Tư pháp", "STP"), ("Sở Lao động - Thương binh và Xã hội", "SLĐTBXH"))  # fmt: skip
MINISTRIES = 12  # receiving organisations 000.00.00.G01 … G12
ACTIONS = ("tình hình thực hiện", "kết quả thực hiện", "công tác", "tổng hợp số liệu", "đánh giá", "tiến độ",
           "kết quả kiểm tra", "tình hình triển khai", "sơ kết", "tổng kết")  # fmt: skip
TOPICS = ("dự toán ngân sách nhà nước", "giải ngân vốn đầu tư công", "cải cách hành chính", "phòng chống tham nhũng",
          "an toàn thực phẩm", "tiêm chủng mở rộng", "tuyển sinh đầu cấp", "giảm nghèo bền vững",
          "xây dựng nông thôn mới", "quản lý tài sản công", "thu chi ngân sách", "bảo hiểm xã hội",
          "giải quyết khiếu nại tố cáo", "chuyển đổi số", "phòng chống thiên tai", "đào tạo nghề",
          "khám chữa bệnh bảo hiểm y tế", "quản lý nợ công", "thực hành tiết kiệm chống lãng phí",
          "biên chế công chức", "thi đua khen thưởng", "phổ biến giáo dục pháp luật", "trợ giúp pháp lý",
          "hộ tịch", "việc làm cho người lao động", "chăm sóc người có công", "phòng chống dịch bệnh",
          "kiểm soát thủ tục hành chính", "đầu tư trực tiếp nước ngoài", "doanh nghiệp nhà nước",
          "sắp xếp đơn vị hành chính", "quản lý giá", "mua sắm tập trung", "kiểm định chất lượng giáo dục",
          "an toàn vệ sinh lao động", "trẻ em có hoàn cảnh đặc biệt", "bình đẳng giới", "cấp nước sạch nông thôn",
          "bảo vệ rừng", "thủy lợi")  # fmt: skip
SCOPES = ("", "trên địa bàn tỉnh", "của ngành", "tại các đơn vị sự nghiệp công lập", "cấp huyện",
          "cấp xã", "trong các cơ sở giáo dục")  # fmt: skip
TYPES = (("Báo cáo", "BC", 70), ("Công văn", "", 12), ("Tờ trình", "TTr", 5), ("Kế hoạch", "KH", 6),
         ("Quyết định", "QĐ", 4), ("Thông báo", "TB", 3))  # fmt: skip
FREQUENCIES = ("month", "quarter", "half", "year")
STATUSES = (None, "01", "03", "04", "05", "06", "06", "06")
YEARS = range(2021, 2027)


@dataclass(frozen=True)
class Regime:
    """A reporting regime (chế độ báo cáo): its name and frequency."""

    name: str
    frequency: str


def make_regimes(rng: random.Random, count: int = 1_220) -> list[Regime]:
    names = [" ".join(p for p in (a, t, s) if p) for a in ACTIONS for t in TOPICS for s in SCOPES]
    rng.shuffle(names)
    return [Regime(name, rng.choice(FREQUENCIES)) for name in names[:count]]


def period_of(frequency: str, year: int, rng: random.Random) -> tuple[str, str, date]:
    """A period, its words in a subject, and the end of its data cutoff (NĐ 09/2019: the 14th)."""
    if frequency == "month":
        month = rng.randint(1, 12)
        return f"{year}-{month:02d}", f"tháng {month} năm {year}", date(year, month, 14)
    if frequency == "quarter":
        quarter = rng.randint(1, 4)
        return (
            f"{year}-Q{quarter}",
            f"quý {['I', 'II', 'III', 'IV'][quarter - 1]} năm {year}",
            date(year, quarter * 3, 14),
        )
    if frequency == "half":
        half = rng.randint(1, 2)
        return (
            f"{year}-H{half}",
            f"{'6 tháng đầu' if half == 1 else '6 tháng cuối'} năm {year}",
            date(year, half * 6, 14),
        )
    return f"{year}", f"năm {year}", date(year, 12, 14)


def make_records(n: int, seed: int = 2026) -> Iterator[ArchiveRecord]:
    rng = random.Random(seed)
    regimes = make_regimes(rng)
    senders = [
        (f"000.{d + 1:02d}.00.H{p + 1:02d}", f"{dept} tỉnh {province}", abbr)
        for p, province in enumerate(PROVINCES)
        for d, (dept, abbr) in enumerate(DEPARTMENTS)
    ]
    ministries = [f"000.00.00.G{m:02d}" for m in range(1, MINISTRIES + 1)]
    type_weights = [w for _, _, w in TYPES]
    numbers: dict[tuple[str, int], int] = {}
    archived0 = datetime(2021, 1, 5, 1, 0, tzinfo=UTC)
    for i in range(n):
        sender, sender_name, abbr = rng.choice(senders)
        ministry = ministries[hash(sender) % MINISTRIES] if rng.random() < 0.7 else rng.choice(ministries)
        recipients = [ministry] + ([f"000.00.00.H{int(sender[-2:]):02d}"] if rng.random() < 0.3 else [])
        regime = rng.choice(regimes)
        period, period_words, cutoff = period_of(regime.frequency, rng.choice(YEARS), rng)
        promulgated = cutoff + timedelta(days=rng.randint(1, 12))
        type_name, type_abbr, _ = rng.choices(TYPES, weights=type_weights)[0]
        year = promulgated.year
        numbers[(sender, year)] = numbers.get((sender, year), 0) + 1
        code = f"{numbers[(sender, year)]}/{type_abbr + '-' if type_abbr else ''}{abbr}"
        document_id = f"{sender},{promulgated:%Y/%m/%d},{code}"
        outgoing = rng.random() < 0.2
        is_status = rng.random() < 0.12
        archived_at = archived0 + timedelta(minutes=i * 3)
        yield ArchiveRecord(
            agency=sender if outgoing else ministry,
            direction="out" if outgoing else "in",
            kind="status" if is_status else "document",
            message_id=f"{i:064x}",
            document_id=document_id,
            object_key=f"sha256/{i:064x}",
            envelope_id=i + 1,
            code=code,
            document_type=type_name,
            subject="" if is_status else f"{type_name} {regime.name} {period_words} {sender_name}",
            sender=sender,
            recipients=tuple(recipients),
            promulgation_date=promulgated,
            report_period=period if type_name == "Báo cáo" else None,
            status_code=rng.choice(STATUSES[1:]) if is_status else None,
            latest_status=None if is_status else rng.choice(STATUSES),
            verified="TOTAL_PASSED",
            report_key=f"sha256/{i + 1:064x}",
            evidence_keys=(f"sha256/{i + 2:064x}",),
            archived_at=archived_at,
        )


def build(index: ArchiveIndex, n: int) -> tuple[float, list[ArchiveRecord]]:
    """Insert ``n`` records in batches; the seconds it took and a sample of the records to search for."""
    sample: list[ArchiveRecord] = []
    batch: list[ArchiveRecord] = []
    start = time.perf_counter()
    for i, record in enumerate(make_records(n)):
        batch.append(record)
        if i % 97 == 0:
            sample.append(record)
        if len(batch) == BATCH:
            index.add_many(batch)
            batch = []
    if batch:
        index.add_many(batch)
    return time.perf_counter() - start, sample


def query_makers(sample: list[ArchiveRecord], rng: random.Random) -> dict[str, Callable[[], ArchiveQuery]]:
    docs = [r for r in sample if r.kind == "document"]
    reports = [r for r in docs if r.report_period]
    vocabulary = sorted({w for r in docs for w in words(r.subject) if len(w) > 2 and not w.isdigit()})

    def some_words(k: int) -> str:
        return " ".join(rng.sample(vocabulary, k))

    def agency_period() -> ArchiveQuery:
        r = rng.choice(reports)
        return ArchiveQuery(agency=r.agency, report_period=r.report_period)

    def document_id() -> ArchiveQuery:
        return ArchiveQuery(document_id=rng.choice(sample).document_id)

    def code() -> ArchiveQuery:
        return ArchiveQuery(code=" ".join(words(rng.choice(sample).code)).replace(" ", "/", 1).replace(" ", "-"))

    def text() -> ArchiveQuery:
        if rng.random() < 0.5:
            return ArchiveQuery(text=" ".join(words(rng.choice(docs).subject)[1:4]))
        return ArchiveQuery(text=some_words(rng.randint(1, 2)))

    def text_date() -> ArchiveQuery:
        year = rng.choice(YEARS)
        subject_words = words(rng.choice(docs).subject)
        start = rng.randrange(0, max(1, len(subject_words) - 2))
        return ArchiveQuery(
            text=" ".join(subject_words[start : start + 2]), date_from=date(year, 1, 1), date_to=date(year, 12, 31)
        )

    def sender_date() -> ArchiveQuery:
        r = rng.choice(sample)
        assert r.promulgation_date is not None
        return ArchiveQuery(
            sender=r.sender, date_from=r.promulgation_date - timedelta(days=90), date_to=r.promulgation_date
        )

    def recipient() -> ArchiveQuery:
        return ArchiveQuery(recipient=rng.choice(rng.choice(sample).recipients), kind="document")

    def type_status() -> ArchiveQuery:
        return ArchiveQuery(
            document_type=rng.choice(("bao cao", "cong van", "to trinh")), status=rng.choice(STATUSES[1:])
        )

    return {
        "agency_period": agency_period,
        "document_id": document_id,
        "code": code,
        "text": text,
        "text_date": text_date,
        "sender_date": sender_date,
        "recipient": recipient,
        "type_status": type_status,
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def run(entries: int, queries: int, seed: int, database_url: str | None = None) -> dict[str, Any]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="lienthong-archive-bench-") as tmp:
        engine = make_engine(database_url or f"sqlite:///{Path(tmp) / 'node.db'}")
        if database_url:
            from storage.migrate import upgrade

            upgrade(engine)  # an empty database of another kind: the production schema, migrated
        else:
            create_schema(engine)
        index = ArchiveIndex(engine)
        seconds, sample = build(index, entries)
        print(f"indexed {entries:,} entries in {seconds:.1f} s ({entries / seconds:,.0f} entries/s)", flush=True)
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        makers = query_makers(sample, rng)
        kinds = [*makers, "page"]
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        hits: dict[str, int] = dict.fromkeys(kinds, 0)
        agencies = sorted({r.agency for r in sample})
        page_query = ArchiveQuery(agency=rng.choice(agencies))
        clock = time.perf_counter
        for i in range(queries):
            kind = kinds[i % len(kinds)]
            query = page_query if kind == "page" else makers[kind]()
            start = clock()
            page = index.search(query)
            times[kind].append(clock() - start)
            hits[kind] += len(page.items)
            if kind == "page":
                page_query = (
                    ArchiveQuery(agency=query.agency, cursor=page.next_cursor)
                    if page.next_cursor
                    else ArchiveQuery(agency=rng.choice(agencies))
                )
            elif kind in ("document_id", "code") and not page.items:
                raise AssertionError(f"{kind} search found nothing: {query}")
        engine.dispose()
    every = [t for ts in times.values() for t in ts]
    p95 = percentile(every, 95) * 1e3
    for kind in kinds:
        ts = times[kind]
        if ts:
            print(
                f"  {kind:<14} {len(ts):>5} searches  p50 {percentile(ts, 50) * 1e3:7.2f} ms  "
                f"p95 {percentile(ts, 95) * 1e3:7.2f} ms  max {max(ts) * 1e3:7.2f} ms  "
                f"{hits[kind] / len(ts):6.1f} rows/page",
                flush=True,
            )
    print(f"all {len(every)} searches: p95 {p95:.2f} ms (target < {TARGET_P95_MS:.0f} ms)", flush=True)
    return {
        "entries": entries,
        "queries": len(every),
        "index_entries_per_s": entries / seconds,
        "search_p50_ms": percentile(every, 50) * 1e3,
        "search_p95_ms": p95,
        "search_p99_ms": percentile(every, 99) * 1e3,
        "search_max_ms": max(every) * 1e3,
        "search_mean_ms": statistics.fmean(every) * 1e3,
        "p95_ms_by_kind": {kind: percentile(ts, 95) * 1e3 for kind, ts in times.items() if ts},
        "target_p95_ms": TARGET_P95_MS,
        "target_met": p95 < TARGET_P95_MS,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "machine": platform.machine(),
    }


def _rounded(value: Any) -> Any:
    """Floats to 4 significant digits: the noise is larger than that anyway."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=100_000, help="archive entries to index (100,000)")
    parser.add_argument("--queries", type=int, default=2_000, help="searches to time, all kinds interleaved (2,000)")
    parser.add_argument("--seed", type=int, default=9, help="seed of the query mix (the data's is fixed)")
    parser.add_argument("--database-url", help="an empty database to use instead of a new SQLite file (PostgreSQL)")
    args = parser.parse_args(argv)
    if args.entries < 200 or args.queries < 9:
        parser.error("--entries must be >= 200 and --queries >= 9 (one of each kind)")
    result = run(args.entries, args.queries, args.seed, args.database_url)
    print(json.dumps(_rounded(result), ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
