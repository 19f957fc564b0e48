"""DocumentId: the conventional ``<OrganId>,<yyyy/MM/dd>,<number>/<notation>`` form, UUIDs, anything else."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import (
    ConventionalDocumentId,
    DocumentIdError,
    DocumentIdForm,
    OrganCode,
    OrganCodeError,
    document_id_form,
    make_document_id,
    new_uuid_document_id,
    parse_conventional,
)

EXAMPLE = "000.00.00.H41,2026/11/20,123/BC-UBND"


def test_make_writes_the_conventional_form() -> None:
    assert make_document_id("000.00.00.H41", date(2026, 11, 20), "123", "BC-UBND") == EXAMPLE
    assert make_document_id("01.02.G22", date(2026, 1, 5), "7", "QĐ-TTg") == "01.02.G22,2026/01/05,7/QĐ-TTg"


def test_parse_conventional_splits_the_parts() -> None:
    parsed = parse_conventional(EXAMPLE)
    assert parsed == ConventionalDocumentId(OrganCode.parse("000.00.00.H41"), date(2026, 11, 20), "123", "BC-UBND")
    assert parsed.organ_id.form is OrganCode.parse("000.00.00.H41").form
    assert str(parsed) == EXAMPLE
    assert document_id_form(EXAMPLE) is DocumentIdForm.CONVENTIONAL


def test_the_notation_may_hold_slashes_and_spaces() -> None:
    text = make_document_id("000.01.41.H41", date(2026, 11, 16), "245", "BC-STC/NS KH")
    assert text == "000.01.41.H41,2026/11/16,245/BC-STC/NS KH"
    parsed = parse_conventional(text)
    assert (parsed.code_number, parsed.code_notation) == ("245", "BC-STC/NS KH")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param("", "is not <OrganId>,<yyyy/MM/dd>,<number>/<notation>", id="empty"),
        pytest.param("000.00.00.H41,20/11/2026,123/BC-UBND", "is not <OrganId>", id="day-first-date"),
        pytest.param("000.00.00.H41,2026/11/20,123", "is not <OrganId>", id="no-notation"),
        pytest.param("000.00.00.H41;2026/11/20;123/BC", "is not <OrganId>", id="semicolons"),
        pytest.param("000.00.00.H41,2026/11/20,123/BC,extra", "is not <OrganId>", id="extra-part"),
        pytest.param("000.00.00.h41,2026/11/20,123/BC", "contains 'h'", id="bad-organ-id"),
        pytest.param("000.00.00.H41,2026/02/30,123/BC", "bad date", id="no-such-day"),
        pytest.param("000.00.00.H41,2026/13/01,123/BC", "bad date", id="no-such-month"),
        pytest.param("000.00.00.H41,٢٠٢٦/١١/٢٠,123/BC", "is not <OrganId>", id="non-ascii-digits"),
    ],
)
def test_parse_conventional_refusals_name_the_problem(text: str, says: str) -> None:
    with pytest.raises(DocumentIdError) as raised:
        parse_conventional(text)
    assert says in str(raised.value)
    assert document_id_form(text) is DocumentIdForm.OTHER


def test_a_bad_sender_in_a_document_id_keeps_the_organ_code_error_as_cause() -> None:
    with pytest.raises(DocumentIdError) as raised:
        parse_conventional("000.00.00.123,2026/11/20,1/BC")
    assert isinstance(raised.value.__cause__, OrganCodeError)
    assert "level-1 group" in str(raised.value)


# --- UUIDs and everything else -----------------------------------------------------------------------


def test_new_uuid_document_ids_are_fresh_canonical_uuids() -> None:
    first, second = new_uuid_document_id(), new_uuid_document_id()
    assert first != second
    assert str(uuid.UUID(first)) == first
    assert uuid.UUID(first).version == 4
    assert document_id_form(first) is DocumentIdForm.UUID
    with pytest.raises(DocumentIdError):
        parse_conventional(first)


@given(st.uuids())
def test_any_hyphenated_uuid_is_the_uuid_form(value: uuid.UUID) -> None:
    assert document_id_form(str(value)) is DocumentIdForm.UUID
    assert document_id_form(str(value).upper()) is DocumentIdForm.UUID


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("123/BC-UBND", id="code-only"),
        pytest.param("VB-2026-000123", id="local-number"),
        pytest.param("6f1c2a3e4b5d46e7a8b9c0d1e2f3a4b5", id="uuid-without-hyphens"),
        pytest.param("{6f1c2a3e-4b5d-46e7-a8b9-c0d1e2f3a4b5}", id="uuid-in-braces"),
        pytest.param("urn:uuid:6f1c2a3e-4b5d-46e7-a8b9-c0d1e2f3a4b5", id="uuid-urn"),
        pytest.param("6f1c2a3e-4b5d-46e7-a8b9-c0d1e2f3a4b", id="uuid-too-short"),
        pytest.param("000.00.00.H41,20/11/2026,123/BC-UBND", id="day-first-date"),
    ],
)
def test_anything_else_is_other(text: str) -> None:
    assert document_id_form(text) is DocumentIdForm.OTHER


@given(st.text(max_size=80))
def test_document_id_form_never_raises(text: str) -> None:
    assert isinstance(document_id_form(text), DocumentIdForm)


# --- make refuses parts that would not read back ------------------------------------------------------


@pytest.mark.parametrize(
    ("organ_id", "number", "notation", "says"),
    [
        pytest.param("000.00.00.H41", "12,3", "BC", "code number '12,3' cannot be used", id="comma-in-number"),
        pytest.param("000.00.00.H41", "1", "BC,UBND", "code notation 'BC,UBND' cannot", id="comma-in-notation"),
        pytest.param("000.00.00.H41", "12/3", "BC", "code number '12/3' must not contain '/'", id="slash-in-number"),
        pytest.param("000.00.00.H41", "", "BC", "code number '' cannot be used", id="empty-number"),
        pytest.param("000.00.00.H41", "123", "", "code notation '' cannot be used", id="empty-notation"),
        pytest.param("000.00.00.H41", "123", "BC\nUBND", "code notation 'BC\\nUBND'", id="newline-in-notation"),
        pytest.param("000.00.00.H41", "1\t2", "BC", "code number '1\\t2'", id="tab-in-number"),
        pytest.param("000.00.00.h41", "123", "BC", "DocumentId sender: organisation code", id="lowercase-organ"),
        pytest.param("", "123", "BC", "DocumentId sender: organisation code is empty", id="empty-organ"),
        pytest.param("000.00.00.123", "123", "BC", "level-1 group", id="organ-without-level1"),
        pytest.param("Sở Tài chính", "123", "BC", "DocumentId sender", id="organ-name-not-code"),
    ],
)
def test_make_refuses_bad_parts(organ_id: str, number: str, notation: str, says: str) -> None:
    with pytest.raises(DocumentIdError) as raised:
        make_document_id(organ_id, date(2026, 11, 20), number, notation)
    assert says in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_make_keeps_the_organ_code_error_as_cause() -> None:
    with pytest.raises(DocumentIdError) as raised:
        make_document_id("000.00.00.g22", date(2026, 11, 20), "1", "BC")
    assert isinstance(raised.value.__cause__, OrganCodeError)


# --- round trip ----------------------------------------------------------------------------------------

organ_ids = st.one_of(
    st.sampled_from(["000.00.00.G22", "000.00.00.H41", "002.00.20.H13", "000.01.41.H41", "01.02.G22", "G22"]),
    st.builds(
        lambda v, z, y, letter, x: f"{v:03d}.{z:02d}.{y:02d}.{letter}{x:02d}",
        st.integers(0, 999),
        st.integers(0, 99),
        st.integers(0, 99),
        st.sampled_from("GHK"),
        st.integers(0, 99),
    ),
)
# Any text a clerk might type, except what the form reserves: ',' everywhere, '/' in the number, and
# white space other than plain spaces.
_part_characters = st.characters(exclude_categories=("Cs", "Zl", "Zp"), exclude_characters=",")
numbers = st.text(_part_characters, min_size=1, max_size=12).filter(
    lambda s: "/" not in s and s == s.strip() and not any(c.isspace() and c != " " for c in s)
)
notations = st.one_of(
    st.sampled_from(["BC-UBND", "QĐ-TTg", "CV-VPCP", "BC-STC/NS", "TB-BTC"]),
    st.text(_part_characters, min_size=1, max_size=24).filter(
        lambda s: s == s.strip() and not any(c.isspace() and c != " " for c in s)
    ),
)


@given(organ_ids, st.dates(), numbers, notations)
def test_make_then_parse_round_trips(organ_id: str, day: date, number: str, notation: str) -> None:
    text = make_document_id(organ_id, day, number, notation)
    assert document_id_form(text) is DocumentIdForm.CONVENTIONAL
    parsed = parse_conventional(text)
    assert parsed.organ_id == OrganCode.parse(organ_id)
    assert parsed.promulgation_date == day
    assert parsed.code_number == number
    assert parsed.code_notation == notation
    assert str(parsed) == text


@pytest.mark.parametrize(("number", "notation"), [(" 12", "BC"), ("12", "BC "), ("12", " ")])
def test_parts_with_surrounding_spaces_are_refused(number: str, notation: str) -> None:
    with pytest.raises(DocumentIdError, match="surrounding"):
        make_document_id("000.00.00.G22", date(2026, 1, 2), number, notation)


def test_document_ids_stay_within_the_limit() -> None:
    with pytest.raises(DocumentIdError, match="at most 256"):
        make_document_id("000.00.00.G22", date(2026, 1, 2), "1", "X" * 300)
