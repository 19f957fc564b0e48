"""The archive index: every field kept, every filter, accent-insensitive text, keyset pages, clear errors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from storage import (
    ArchiveEntryNotFoundError,
    ArchiveIndex,
    ArchiveQuery,
    ArchiveQueryError,
    ArchiveRecord,
    ArchiveRecordError,
)
from storage._private import archive_search
from storage._private.archive_text import fold, folded_text, like_patterns, parse_text_query
from storage.db import create_schema, make_engine

MINISTRY = "000.00.00.G12"
NGHE_AN = "000.01.00.H41"
DONG_NAI = "000.01.00.H19"
T0 = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["native", "like"])
def index(request: pytest.FixtureRequest, engine: Engine) -> ArchiveIndex:
    """The index with SQLite FTS5, with the portable LIKE fallback, and on PostgreSQL (LIKE both times)."""
    archive = ArchiveIndex(engine)
    if request.param == "like":
        archive._fts = False  # what it decides on a database without FTS5
    return archive


def record(n: int = 1, **fields: object) -> ArchiveRecord:
    values: dict[str, object] = {
        "agency": MINISTRY,
        "direction": "in",
        "kind": "document",
        "message_id": f"{n:064x}",
        "document_id": f"{NGHE_AN},2026/10/0{n % 9 + 1},{n}/BC-STC",
        "object_key": f"sha256/{n:064x}",
        "code": f"{n}/BC-STC",
        "document_type": "Báo cáo",
        "subject": f"Báo cáo tình hình thực hiện dự toán ngân sách nhà nước tháng 9 năm 2026 số {n}",
        "sender": NGHE_AN,
        "recipients": (MINISTRY,),
        "promulgation_date": date(2026, 10, 5),
        "report_period": "2026-09",
        "archived_at": T0 + timedelta(minutes=n),
    }
    values.update(fields)
    return ArchiveRecord(**values)  # type: ignore[arg-type]


def ids(index: ArchiveIndex, **filters: object) -> list[int]:
    return [e.id for e in index.search(ArchiveQuery(**filters)).items]  # type: ignore[arg-type]


# Writing and reading back.


def test_every_field_is_kept(index: ArchiveIndex) -> None:
    full = record(
        7,
        envelope_id=42,
        direction="out",
        agency=NGHE_AN,
        recipients=(MINISTRY, "000.00.00.H41"),
        report_period="2026-q3",
        latest_status="03",
        verified="TOTAL_PASSED",
        report_key="sha256/" + "a" * 64,
        evidence_keys=("sha256/" + "b" * 64, "sha256/" + "c" * 64),
    )
    entry = index.get(index.add(full))
    assert entry.envelope_id == 42
    assert (entry.agency, entry.direction, entry.kind) == (NGHE_AN, "out", "document")
    assert entry.recipients == (MINISTRY, "000.00.00.H41")
    assert entry.report_period == "2026-Q3"  # normal form
    assert entry.subject == full.subject and entry.code == full.code and entry.document_type == "Báo cáo"
    assert entry.promulgation_date == date(2026, 10, 5)
    assert entry.archived_at == full.archived_at and entry.archived_at.tzinfo is not None
    assert entry.evidence_keys == full.evidence_keys and entry.report_key == full.report_key
    assert (entry.latest_status, entry.status_code, entry.verified) == ("03", None, "TOTAL_PASSED")
    as_json = entry.as_json()
    assert as_json["recipients"] == [MINISTRY, "000.00.00.H41"]
    assert as_json["promulgation_date"] == "2026-10-05"


def test_add_takes_keywords_and_add_many_keeps_order(index: ArchiveIndex) -> None:
    first = index.add(**record(1).__dict__)
    many = index.add_many([record(n) for n in range(2, 40)])
    assert many == list(range(first + 1, first + 39))
    assert [index.get(i).message_id for i in many] == [f"{n:064x}" for n in range(2, 40)]
    assert index.add_many([]) == []


def test_status_message_is_found_by_its_code(index: ArchiveIndex) -> None:
    status_id = index.add(record(1, kind="status", subject="", status_code="06", report_period=None))
    assert index.get(status_id).latest_status == "06"
    assert ids(index, status="06") == [status_id]


def test_get_unknown_id_says_so(index: ArchiveIndex) -> None:
    with pytest.raises(ArchiveEntryNotFoundError, match="no archive entry 99"):
        index.get(99)


def test_one_entry_per_envelope(index: ArchiveIndex) -> None:
    index.add(record(1, envelope_id=5))
    with pytest.raises(IntegrityError):
        index.add(record(2, envelope_id=5))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"direction": "sideways"}, "direction must be one of in, out, transit"),
        ({"kind": "memo"}, "kind must be one of document, status"),
        ({"agency": " "}, "agency must be a non-empty string"),
        ({"report_period": "2026-13"}, "unknown report period '2026-13'"),
        ({"report_period": "Q3/2026"}, "use YYYY, YYYY-MM"),
        ({"archived_at": datetime(2026, 10, 1)}, "naive datetime"),
        ({"recipients": MINISTRY}, "recipients must be a list of non-empty strings"),
        ({"evidence_keys": ("",)}, "evidence_keys must be a list"),
        ({"promulgation_date": T0}, "must be a date, not a datetime"),
    ],
)
def test_bad_records_are_refused(index: ArchiveIndex, fields: dict[str, object], message: str) -> None:
    with pytest.raises(ArchiveRecordError, match=message):
        index.add(record(1, **fields))
    assert index.search(ArchiveQuery()).total == 0  # nothing half-written


def test_add_with_unknown_keyword(index: ArchiveIndex) -> None:
    with pytest.raises(ArchiveRecordError, match="colour"):
        index.add(agency=MINISTRY, colour="red")


# Filters.


def test_each_filter(index: ArchiveIndex) -> None:
    a = index.add(record(1))
    b = index.add(record(2, direction="out", agency=NGHE_AN, recipients=(MINISTRY, "000.00.00.H41")))
    c = index.add(record(3, sender=DONG_NAI, document_type="Công văn", code="15/STC-NS", report_period=None))
    d = index.add(record(4, report_period="2026-Q3", message_id="f" * 64))
    assert ids(index, agency=MINISTRY) == [d, c, a]
    assert ids(index, direction="out") == [b]
    assert ids(index, sender=DONG_NAI) == [c]
    assert ids(index, recipient="000.00.00.H41") == [b]
    assert ids(index, recipient=MINISTRY) == [d, c, b, a]
    assert ids(index, document_id=f"{NGHE_AN},2026/10/03,2/BC-STC") == [b]
    assert ids(index, message_id="f" * 64) == [d]
    assert ids(index, code="15 / stc-ns") == [c]  # case, accents and blanks ignored
    assert ids(index, document_type="cong van") == [c]
    assert ids(index, document_type="BÁO CÁO") == [d, b, a]
    assert ids(index, report_period="2026-09") == [b, a]
    assert ids(index, report_period="2026-q3") == [d]
    assert ids(index, agency=MINISTRY, report_period="2026-09", kind="document") == [a]
    assert ids(index, kind="status") == []


def test_latest_status_follows_updates(index: ArchiveIndex) -> None:
    doc = record(1)
    ours = index.add(doc)
    other = index.add(record(2, document_id=doc.document_id, agency=NGHE_AN, direction="out"))
    status = index.add(record(3, document_id=doc.document_id, kind="status", status_code="01", subject=""))
    assert index.update_status(doc.document_id, MINISTRY, "05") == 1  # the document, not the status message
    assert index.get(ours).latest_status == "05"
    assert index.get(other).latest_status is None
    assert index.get(status).latest_status == "01"
    assert ids(index, status="05") == [ours]
    assert index.update_status("no such document", MINISTRY, "06") == 0


def test_dates_are_promulgation_else_archiving_day_in_vietnam(index: ArchiveIndex) -> None:
    promulgated = index.add(record(1, promulgation_date=date(2026, 3, 31)))
    # 18:30 UTC on 4 October is 01:30 on 5 October in Vietnam.
    archived = index.add(record(2, promulgation_date=None, archived_at=datetime(2026, 10, 4, 18, 30, tzinfo=UTC)))
    assert ids(index, date_from=date(2026, 3, 31), date_to=date(2026, 3, 31)) == [promulgated]
    assert ids(index, date_from=date(2026, 10, 5)) == [archived]
    assert ids(index, date_to=date(2026, 10, 4)) == [promulgated]
    assert ids(index) == [archived, promulgated]  # newest first


# Text.


def test_text_is_accent_and_case_insensitive(index: ArchiveIndex) -> None:
    budget = index.add(record(1, subject="Báo cáo ngân sách tỉnh Đồng Nai quý III"))
    other = index.add(record(2, subject="Kế hoạch phòng chống thiên tai năm 2026"))
    decree = index.add(record(3, subject="Công văn về việc thực hiện Nghị định 30/2020/NĐ-CP"))
    assert ids(index, text="bao cao ngan sach") == [budget]
    assert ids(index, text="BÁO CÁO NGÂN SÁCH") == [budget]
    assert ids(index, text="dong nai") == [budget]
    assert ids(index, text="đồng   NAI") == [budget]
    assert ids(index, text="nghi dinh 30/2020/nd-cp") == [decree]
    assert ids(index, text="thien tai 2026") == [other]
    assert ids(index, text="ngan sach thien tai") == []  # every word must be there


def test_text_phrases_and_prefixes(index: ArchiveIndex) -> None:
    a = index.add(record(1, subject="Báo cáo kết quả giải ngân vốn đầu tư công"))
    b = index.add(record(2, subject="Vốn đầu tư và kết quả công tác giải ngân"))
    assert ids(index, text="giai ngan von") == [b, a]
    assert ids(index, text='"giai ngan von"') == [a]
    assert ids(index, text="ket qua giai*") == [b, a]
    assert ids(index, text='"dau tu cong"') == [a]
    assert ids(index, text="ngan*") == [b, a]
    assert ids(index, text="nga") == []  # words, not substrings


def test_text_with_other_filters_and_both_plans(index: ArchiveIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    added = index.add_many(
        [
            record(n, subject=f"Báo cáo {'ngân sách' if n % 3 else 'y tế'} số {n}", sender=[NGHE_AN, DONG_NAI][n % 2])
            for n in range(1, 31)
        ]
    )
    expected = [i for n, i in zip(range(1, 31), added, strict=True) if n % 3 and n % 2][::-1]
    queries = [
        ArchiveQuery(text="ngan sach", sender=DONG_NAI),
        ArchiveQuery(text="ngan sach", sender=DONG_NAI, recipient=MINISTRY),
    ]
    for drive_limit in (1_000, 2):  # the id set drives the query; the index walks and probes the set
        monkeypatch.setattr(archive_search, "DRIVE_LIMIT", drive_limit)
        for query in queries:
            page = index.search(query)
            assert [e.id for e in page.items] == expected
            assert (page.total, page.total_exact) == (len(expected), True)


# Pages and totals.


def test_keyset_pages_cover_everything_once(index: ArchiveIndex) -> None:
    # Several entries per day: the id breaks ties in the order.
    index.add_many([record(n, promulgation_date=date(2026, 1, 1) + timedelta(days=n % 7)) for n in range(1, 121)])
    query = ArchiveQuery(agency=MINISTRY, limit=50)
    seen: list[tuple[date, int]] = []
    sizes = []
    while True:
        page = index.search(query)
        assert page.total == 120 and page.total_exact
        sizes.append(len(page.items))
        seen += [(e.promulgation_date or date.min, e.id) for e in page.items]
        if page.next_cursor is None:
            break
        query = replace(query, cursor=page.next_cursor)
    assert sizes == [50, 50, 20]
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 120


def test_cursor_survives_a_new_limit(index: ArchiveIndex) -> None:
    index.add_many([record(n) for n in range(1, 11)])
    first = index.search(ArchiveQuery(limit=3))
    assert first.next_cursor is not None
    rest = index.search(ArchiveQuery(limit=500, cursor=first.next_cursor))
    assert len(rest.items) == 7 and rest.next_cursor is None and rest.total == 10


def test_total_is_capped_where_counting_would_be_slow(engine: Engine) -> None:
    index = ArchiveIndex(engine, count_limit=10)
    index.add_many([record(n) for n in range(1, 26)])
    page = index.search(ArchiveQuery(agency=MINISTRY, limit=5))
    assert (page.total, page.total_exact) == (10, False)
    assert index.count(ArchiveQuery(agency=MINISTRY)) == 25
    # A text search alone is counted exactly at no cost where the FTS index knows how many documents match
    # (SQLite); with the LIKE fallback (PostgreSQL for now) it is capped like any other search.
    page = index.search(ArchiveQuery(text="ngan sach"))
    expected = (25, True) if engine.dialect.name == "sqlite" else (10, False)
    assert (page.total, page.total_exact) == expected
    assert index.count(ArchiveQuery(text="ngan sach", sender=NGHE_AN)) == 25
    with pytest.raises(ValueError, match="count_limit"):
        ArchiveIndex(engine, count_limit=0)


def test_bad_cursors_are_refused(index: ArchiveIndex) -> None:
    index.add_many([record(n) for n in range(1, 5)])
    cursor = index.search(ArchiveQuery(agency=MINISTRY, limit=2)).next_cursor
    assert cursor is not None
    with pytest.raises(ArchiveQueryError, match="cursor belongs to a search with other filters"):
        index.search(ArchiveQuery(agency=NGHE_AN, cursor=cursor))
    for bad in ("", "not base64!", "W10", cursor[:-3], "x" * 300):
        with pytest.raises(ArchiveQueryError, match="malformed cursor"):
            index.search(ArchiveQuery(agency=MINISTRY, cursor=bad))


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"limit": 0}, "limit must be an integer from 1 to 500"),
        ({"limit": 501}, "limit must be an integer from 1 to 500"),
        ({"limit": True}, "limit must be an integer"),
        ({"report_period": "2026-Q5"}, "unknown report period '2026-Q5'"),
        ({"report_period": "quý 3"}, "unknown report period"),
        ({"date_from": date(2026, 2, 1), "date_to": date(2026, 1, 1)}, "is after date_to"),
        ({"date_from": T0}, "date_from must be a date"),
        ({"direction": "up"}, "direction must be one of"),
        ({"kind": "letter"}, "kind must be one of"),
        ({"text": " !!! -- "}, "no letters or digits"),
        ({"text": "a " * 300}, "at most 500"),
        ({"text": " ".join(f"w{i}" for i in range(17))}, "at most 16"),
        ({"code": "   "}, "code has no characters"),
    ],
)
def test_bad_queries_say_what_is_wrong(filters: dict[str, object], message: str) -> None:
    with pytest.raises(ArchiveQueryError, match=message):
        ArchiveQuery(**filters)  # type: ignore[arg-type]


# The FTS index stays in step with the rows whatever writes them.


def test_fts_triggers_follow_sql_updates_and_deletes(engine: Engine) -> None:
    index = ArchiveIndex(engine)
    entry = index.add(record(1, subject="Báo cáo ngân sách"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE archive_entries SET subject_folded = ' y te ' WHERE id = :id"), {"id": entry})
    assert ids(index, text="y te") == [entry]
    assert ids(index, text="ngan sach") == []
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM archive_recipients"))
        conn.execute(text("DELETE FROM archive_entries"))
    assert ids(index, text="y te") == []


# Folding.


def test_fold() -> None:
    assert fold("Báo cáo NGÂN SÁCH Đắk Lắk") == "bao cao ngan sach dak lak"
    assert fold("e\u0301") == fold("é") == "e"  # decomposed input too
    assert folded_text("Công văn số 123/BC-UBND") == " cong van so 123 bc ubnd "
    assert folded_text("!!!") == ""


_VIETNAMESE = st.text(
    alphabet="aăâbcdđeêghiklmnoôơpqrstuưvxyáàảãạấầẩẫậắằẳẵặếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ ĐÂ0129/-\u0301",
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(_VIETNAMESE)
def test_any_subject_is_found_by_its_own_words_without_accents(subject: str) -> None:
    words = folded_text(subject).split()
    if not words:
        return
    folded_query = " ".join(words)
    for pattern in like_patterns(parse_text_query(folded_query)):
        assert _like(folded_text(subject), pattern)
    assert fold(fold(subject)) == fold(subject)


def _like(value: str, pattern: str) -> bool:
    import re

    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("%")), value, re.DOTALL) is not None
