"""Organisation codes (mã định danh): the two written forms, default parents, the registry."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import CodeForm, OrganCode, OrganCodeError, OrganEntry, OrganRegistry, Sector, is_valid_organ_code
from schemas.orgcode import MAX_LENGTH


def chain(code: OrganCode) -> list[OrganCode]:
    """The default parents of ``code``, nearest first (bounded, so a bug cannot hang the test)."""
    out: list[OrganCode] = []
    current: OrganCode | None = code.default_parent()
    while current is not None:
        out.append(current)
        assert len(out) <= MAX_LENGTH, f"default parents of {code} do not end: {out}"
        current = current.default_parent()
    return out


# --- the examples of DESIGN.md ---------------------------------------------------------------------


def test_van_phong_chinh_phu_is_a_top_level_government_body() -> None:
    code = OrganCode.parse("000.00.00.G22")
    assert code.value == "000.00.00.G22"
    assert str(code) == "000.00.00.G22"
    assert code.form is CodeForm.QCVN_102
    assert code.groups == ("000", "00", "00", "G22")
    assert code.level1 == "G22"
    assert code.sector is Sector.GOVERNMENT
    assert code.is_top_level
    assert code.default_parent() is None


def test_ubnd_tinh_nghe_an_is_a_top_level_provincial_peoples_committee() -> None:
    code = OrganCode.parse("000.00.00.H41")
    assert code.form is CodeForm.QCVN_102
    assert code.level1 == "H41"
    assert code.sector is Sector.PROVINCIAL_PEOPLES_COMMITTEE
    assert code.is_top_level
    assert code.default_parent() is None


@pytest.mark.parametrize(
    ("text", "sector"),
    [
        ("000.00.00.G12", Sector.GOVERNMENT),
        ("000.00.00.H13", Sector.PROVINCIAL_PEOPLES_COMMITTEE),
        ("000.00.00.K41", Sector.PROVINCIAL_PEOPLES_COUNCIL),
        ("000.00.00.A05", Sector.OTHER),
        ("01.02.G22", Sector.GOVERNMENT),
        ("Z99", Sector.OTHER),
    ],
)
def test_the_level1_letter_names_the_sector(text: str, sector: Sector) -> None:
    assert OrganCode.parse(text).sector is sector


def test_a_commune_climbs_to_its_province_by_zeroing_the_leftmost_non_zero_group() -> None:
    commune = OrganCode.parse("002.00.20.H13")
    assert not commune.is_top_level
    district = commune.default_parent()
    assert district == OrganCode.parse("000.00.20.H13")
    assert district is not None
    assert district.form is CodeForm.QCVN_102
    assert not district.is_top_level
    province = district.default_parent()
    assert province == OrganCode.parse("000.00.00.H13")
    assert province is not None
    assert province.is_top_level
    assert province.default_parent() is None
    assert [str(c) for c in chain(commune)] == ["000.00.20.H13", "000.00.00.H13"]


def test_the_middle_group_is_zeroed_before_the_right_one() -> None:
    department = OrganCode.parse("000.01.41.H41")
    assert [str(c) for c in chain(department)] == ["000.00.41.H41", "000.00.00.H41"]
    every_level = OrganCode.parse("123.45.67.G22")
    assert [str(c) for c in chain(every_level)] == ["000.45.67.G22", "000.00.67.G22", "000.00.00.G22"]


def test_qd_20_2020_form_drops_the_leftmost_group() -> None:
    code = OrganCode.parse("01.02.G22")
    assert code.form is CodeForm.QD_20_2020
    assert code.groups == ("01", "02", "G22")
    assert code.level1 == "G22"
    assert code.sector is Sector.GOVERNMENT
    assert not code.is_top_level
    parent = code.default_parent()
    assert parent == OrganCode.parse("02.G22")
    assert parent is not None
    assert parent.form is CodeForm.QD_20_2020
    top = parent.default_parent()
    assert top == OrganCode.parse("G22")
    assert top is not None
    assert top.is_top_level
    assert top.default_parent() is None


def test_a_longer_qd_20_2020_code_can_climb_into_the_qcvn_102_form() -> None:
    code = OrganCode.parse("7.000.00.00.G22")
    assert code.form is CodeForm.QD_20_2020
    parent = code.default_parent()
    assert parent == OrganCode.parse("000.00.00.G22")
    assert parent is not None
    assert parent.form is CodeForm.QCVN_102


def test_codes_compare_and_hash_by_their_text() -> None:
    a = OrganCode.parse("000.00.00.G22")
    assert a == OrganCode("000.00.00.G22", CodeForm.QCVN_102)
    assert a != OrganCode.parse("000.00.00.H41")
    assert len({a, OrganCode.parse("000.00.00.G22")}) == 1
    assert sorted([OrganCode.parse("000.00.00.H41"), a]) == [a, OrganCode.parse("000.00.00.H41")]
    with pytest.raises(AttributeError):
        a.value = "000.00.00.H41"  # type: ignore[misc]


def test_the_longest_allowed_code_is_35_characters() -> None:
    longest = "1234567890.1234567890.123456789.G22"
    assert len(longest) == MAX_LENGTH == 35
    assert OrganCode.parse(longest).form is CodeForm.QD_20_2020
    with pytest.raises(OrganCodeError, match=r"is 36 characters; at most 35"):
        OrganCode.parse("1" + longest)


def test_is_valid_organ_code() -> None:
    assert is_valid_organ_code("000.00.00.G22")
    assert is_valid_organ_code("01.02.G22")
    assert not is_valid_organ_code("000.00.00.g22")
    assert not is_valid_organ_code("")


# --- refusals, each saying what is wrong -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param("", "is empty", id="empty"),
        pytest.param("1234567890.1234567890.1234567890.G22", "is 36 characters; at most 35", id="too-long"),
        pytest.param("000.00.00.g22", "contains 'g'", id="lowercase"),
        pytest.param("abc", "contains 'a'", id="all-lowercase"),
        pytest.param("000.00.00 .G22", "contains ' '", id="inner-space"),
        pytest.param(" 000.00.00.G22", "contains ' '", id="leading-space"),
        pytest.param("000.00.00.G22\n", "contains '\\n'", id="trailing-newline"),
        pytest.param("000.00.00.Đ22", "contains 'Đ'", id="vietnamese-capital"),
        pytest.param("SỞ.G22", "contains 'Ở'", id="vietnamese-word"),
        pytest.param("000.00.00.ư22", "contains 'ư'", id="vietnamese-lowercase"),
        pytest.param("０００.00.00.G22", "contains '０'", id="fullwidth-digit"),
        pytest.param("000-00-00-G22", "contains '-'", id="dashes"),
        pytest.param(".000.00.00.G22", "empty group (leading, trailing or double '.')", id="leading-dot"),
        pytest.param("000.00.00.G22.", "empty group (leading, trailing or double '.')", id="trailing-dot"),
        pytest.param("000..00.G22", "empty group (leading, trailing or double '.')", id="double-dot"),
        pytest.param(".", "empty group", id="only-a-dot"),
        pytest.param("000.00.00.123", "must end with a level-1 group of a letter and two digits", id="no-level1"),
        pytest.param("000.00.00", "found '00'", id="no-level1-group"),
        pytest.param("000.00.00.G2", "found 'G2'", id="short-level1"),
        pytest.param("000.00.00.G222", "found 'G222'", id="long-level1"),
        pytest.param("000.00.00.GG2", "found 'GG2'", id="two-letters"),
        pytest.param("G22.000.00.00", "found '00'", id="level1-on-the-left"),
    ],
)
def test_refusals_name_the_problem(text: str, says: str) -> None:
    with pytest.raises(OrganCodeError) as raised:
        OrganCode.parse(text)
    assert says in str(raised.value)
    assert not is_valid_organ_code(text)


def test_missing_level1_names_the_group_found() -> None:
    with pytest.raises(OrganCodeError, match=r"like G22 or H41; found '123'"):
        OrganCode.parse("000.00.00.123")


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(None, "NoneType"), (123, "int"), (b"000.00.00.G22", "bytes"), (["000.00.00.G22"], "list")],
)
def test_non_text_is_refused(value: object, type_name: str) -> None:
    with pytest.raises(OrganCodeError, match=rf"must be text, got {type_name}$"):
        OrganCode.parse(value)  # type: ignore[arg-type]


def test_organ_code_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="is empty"):
        OrganCode.parse("")


# --- the registry ----------------------------------------------------------------------------------

VPCP = OrganEntry(OrganCode.parse("000.00.00.G22"), "Văn phòng Chính phủ")
BO_TAI_CHINH = OrganEntry(OrganCode.parse("000.00.00.G12"), "Bộ Tài chính")
UBND_NGHE_AN = OrganEntry(OrganCode.parse("000.00.00.H41"), "Ủy ban nhân dân tỉnh Nghệ An")


def test_registry_holds_entries_by_code() -> None:
    registry = OrganRegistry([VPCP, UBND_NGHE_AN])
    assert len(registry) == 2
    assert list(registry) == [VPCP, UBND_NGHE_AN]
    assert registry.get("000.00.00.G22") is VPCP
    assert registry.get(OrganCode.parse("000.00.00.H41")) is UBND_NGHE_AN
    assert registry.get("000.00.00.G12") is None
    assert "000.00.00.G22" in registry
    assert OrganCode.parse("000.00.00.H41") in registry
    assert "000.00.00.G12" not in registry
    assert 42 not in registry
    with pytest.raises(OrganCodeError, match="contains 'x'"):
        registry.get("xyz")


def test_without_an_override_the_parent_is_the_default() -> None:
    registry = OrganRegistry([OrganEntry(OrganCode.parse("002.00.20.H13"), "UBND xã")])
    assert registry.parent_of("002.00.20.H13") == OrganCode.parse("000.00.20.H13")
    assert registry.parent_of("000.00.00.H13") is None  # not registered: the default still applies
    assert registry.ancestors("002.00.20.H13") == (OrganCode.parse("000.00.20.H13"), OrganCode.parse("000.00.00.H13"))
    assert registry.ancestors(OrganCode.parse("01.02.G22")) == (OrganCode.parse("02.G22"), OrganCode.parse("G22"))
    assert registry.ancestors("000.00.00.G22") == ()


def test_an_override_replaces_the_default_parent() -> None:
    # The Nghệ An finance department reports straight to the province, not through 000.00.41.H41 ...
    department = OrganEntry(
        OrganCode.parse("000.01.41.H41"), "Sở Tài chính tỉnh Nghệ An", parent=OrganCode.parse("000.00.00.H41")
    )
    # ... and a unit of a vertical branch answers to a ministry in another sector.
    treasury = OrganEntry(
        OrganCode.parse("003.00.41.H41"), "Kho bạc Nhà nước khu vực", parent=OrganCode.parse("000.00.00.G12")
    )
    registry = OrganRegistry([UBND_NGHE_AN, department, treasury, BO_TAI_CHINH])
    assert OrganCode.parse("000.01.41.H41").default_parent() == OrganCode.parse("000.00.41.H41")
    assert registry.parent_of("000.01.41.H41") == OrganCode.parse("000.00.00.H41")
    assert registry.ancestors("000.01.41.H41") == (OrganCode.parse("000.00.00.H41"),)
    assert registry.ancestors("003.00.41.H41") == (OrganCode.parse("000.00.00.G12"),)
    # Below an overridden unit, defaults lead to it and the override takes over from there.
    assert registry.ancestors("004.01.41.H41") == (
        OrganCode.parse("000.01.41.H41"),
        OrganCode.parse("000.00.00.H41"),
    )


def test_an_entry_with_no_parent_override_keeps_the_default() -> None:
    registry = OrganRegistry([OrganEntry(OrganCode.parse("000.00.20.H13"), "UBND huyện", parent=None)])
    assert registry.parent_of("000.00.20.H13") == OrganCode.parse("000.00.00.H13")


def test_a_cycle_in_the_overrides_is_an_error_naming_the_cycle() -> None:
    registry = OrganRegistry(
        [
            OrganEntry(OrganCode.parse("000.00.00.G22"), "A", parent=OrganCode.parse("000.00.00.H41")),
            OrganEntry(OrganCode.parse("000.00.00.H41"), "B", parent=OrganCode.parse("000.00.00.G22")),
        ]
    )
    with pytest.raises(OrganCodeError) as raised:
        registry.ancestors("000.00.00.G22")
    message = str(raised.value)
    assert "cycle" in message
    assert "000.00.00.G22 → 000.00.00.H41 → 000.00.00.G22" in message


def test_a_cycle_through_default_parents_is_found_too() -> None:
    # 002.00.20.H13 → (default) 000.00.20.H13 → (default) 000.00.00.H13 → (override) 002.00.20.H13
    registry = OrganRegistry(
        [OrganEntry(OrganCode.parse("000.00.00.H13"), "UBND tỉnh", parent=OrganCode.parse("002.00.20.H13"))]
    )
    with pytest.raises(OrganCodeError, match="cycle") as raised:
        registry.ancestors("002.00.20.H13")
    assert "002.00.20.H13 → 000.00.20.H13 → 000.00.00.H13 → 002.00.20.H13" in str(raised.value)
    # A unit above the cycle's entry point is caught in it as well, and the message shows how it got there.
    with pytest.raises(OrganCodeError, match=r"^the registry's parents form a cycle: 001\.00\.20\.H13 → "):
        registry.ancestors("001.00.20.H13")


def test_duplicate_codes_are_refused() -> None:
    registry = OrganRegistry([VPCP])
    with pytest.raises(OrganCodeError, match=r"organisation 000\.00\.00\.G22 is already registered"):
        registry.add(OrganEntry(OrganCode.parse("000.00.00.G22"), "Văn phòng Chính phủ (bis)"))
    assert registry.get("000.00.00.G22") is VPCP
    assert len(registry) == 1
    with pytest.raises(OrganCodeError, match="already registered"):
        OrganRegistry([BO_TAI_CHINH, BO_TAI_CHINH])


def test_a_unit_cannot_be_its_own_parent() -> None:
    code = OrganCode.parse("000.00.00.G22")
    with pytest.raises(OrganCodeError, match="cannot be its own parent"):
        OrganRegistry([OrganEntry(code, "Văn phòng Chính phủ", parent=code)])


# --- properties ------------------------------------------------------------------------------------

qcvn_102_codes = st.builds(
    lambda v, z, y, letter, x: f"{v:03d}.{z:02d}.{y:02d}.{letter}{x:02d}",
    st.integers(0, 999),
    st.integers(0, 99),
    st.integers(0, 99),
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    st.integers(0, 99),
)


@given(qcvn_102_codes)
def test_every_qcvn_102_code_reaches_the_top_within_three_steps(text: str) -> None:
    code = OrganCode.parse(text)
    assert code.form is CodeForm.QCVN_102
    assert str(code) == text
    parents = chain(code)
    assert len(parents) <= 3
    assert len(parents) == sum(1 for g in code.groups[:-1] if set(g) != {"0"})
    top = parents[-1] if parents else code
    assert top.is_top_level
    assert top.value == f"000.00.00.{code.level1}"
    assert code.is_top_level == (not parents)
    for parent in parents:
        assert parent.form is CodeForm.QCVN_102
        assert parent.level1 == code.level1
        assert parent == OrganCode.parse(parent.value)
    assert OrganRegistry().ancestors(code) == tuple(parents)


@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.", max_size=MAX_LENGTH))
def test_any_code_alphabet_string_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        code = OrganCode.parse(text)
    except OrganCodeError:
        return
    assert str(code) == text
    parents = chain(code)  # never raises for a code that parsed
    assert len(parents) < len(code.groups)
    assert all(p.level1 == code.level1 for p in parents)
    assert OrganRegistry().ancestors(code) == tuple(parents)


@given(st.text(max_size=2 * MAX_LENGTH))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    with contextlib.suppress(OrganCodeError):
        OrganCode.parse(text)
