"""Organisation codes (mã định danh điện tử của cơ quan, tổ chức).

Two written forms are in use:

* QCVN 102:2016 ``V1V2V3.Z1Z2.Y1Y2.MX1X2`` such as ``000.00.00.G22`` (Văn phòng Chính phủ) or
  ``002.00.20.H13`` (a commune): four groups of 3, 2, 2 digits and a level-1 group (a letter and two
  digits), most significant on the right. Unused levels are zeros.
* QĐ 20/2020/QĐ-TTg: up to 35 characters of ``[0-9A-Z.]``, dot-separated groups, the level-1 group on
  the right, e.g. ``01.02.G22``.

The letter of the level-1 group names the sector: ``G`` ministries and government bodies, ``H``
provincial People's Committees, ``K`` provincial People's Councils. The registry, not the string, is
the source of truth for who a unit's parent is; :meth:`OrganCode.default_parent` is only the default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from schemas.errors import OrganCodeError

MAX_LENGTH = 35  # QĐ 20/2020/QĐ-TTg

_QCVN_102 = re.compile(r"(\d{3})\.(\d{2})\.(\d{2})\.([A-Z]\d{2})")
_GROUP = re.compile(r"[0-9A-Z]+")
_LEVEL1 = re.compile(r"[A-Z]\d{2}")


class CodeForm(Enum):
    QCVN_102 = "QCVN 102:2016"
    QD_20_2020 = "QĐ 20/2020/QĐ-TTg"


class Sector(Enum):
    """What the level-1 letter says about the top unit."""

    GOVERNMENT = "G"  # bộ, cơ quan ngang bộ, cơ quan thuộc Chính phủ
    PROVINCIAL_PEOPLES_COMMITTEE = "H"  # UBND tỉnh, thành phố trực thuộc trung ương
    PROVINCIAL_PEOPLES_COUNCIL = "K"  # HĐND tỉnh
    OTHER = "?"


@dataclass(frozen=True, slots=True, order=True)
class OrganCode:
    """A validated organisation code. Construct with :meth:`parse`."""

    value: str
    form: CodeForm = field(compare=False)

    @classmethod
    def parse(cls, text: str) -> OrganCode:
        """Validate ``text`` and return the code; raises :class:`OrganCodeError` saying what is wrong."""
        if not isinstance(text, str):
            raise OrganCodeError(f"organisation code must be text, got {type(text).__name__}")
        if not text:
            raise OrganCodeError("organisation code is empty")
        if len(text) > MAX_LENGTH:
            raise OrganCodeError(f"organisation code {text!r} is {len(text)} characters; at most {MAX_LENGTH}")
        bad = next((c for c in text if not (c.isascii() and (c.isdigit() or c.isupper() or c == "."))), None)
        if bad is not None:
            raise OrganCodeError(f"organisation code {text!r} contains {bad!r}; only 0-9, A-Z and '.' are allowed")
        if _QCVN_102.fullmatch(text):
            return cls(text, CodeForm.QCVN_102)
        groups = text.split(".")
        if any(not g for g in groups):
            raise OrganCodeError(f"organisation code {text!r} has an empty group (leading, trailing or double '.')")
        if not _LEVEL1.fullmatch(groups[-1]):
            raise OrganCodeError(
                f"organisation code {text!r} must end with a level-1 group of a letter and two digits, "
                f"like G22 or H41; found {groups[-1]!r}"
            )
        return cls(text, CodeForm.QD_20_2020)

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self.value.split("."))

    @property
    def level1(self) -> str:
        """The top unit's group, e.g. ``G22`` for ``000.00.00.G22``."""
        return self.groups[-1]

    @property
    def sector(self) -> Sector:
        try:
            return Sector(self.level1[0])
        except ValueError:
            return Sector.OTHER

    @property
    def is_top_level(self) -> bool:
        """True when no lower level is set (``000.00.00.H41``, ``G22``)."""
        return all(set(g) == {"0"} for g in self.groups[:-1])

    def default_parent(self) -> OrganCode | None:
        """The parent the string implies, or None for a top-level unit.

        QCVN 102 form: zero the leftmost non-zero group (``002.00.20.H13`` → ``000.00.20.H13`` →
        ``000.00.00.H13``). QĐ 20/2020 form: drop the leftmost group (``01.02.G22`` → ``02.G22``).
        """
        if self.is_top_level:
            return None
        groups = list(self.groups)
        if self.form is CodeForm.QCVN_102:
            for i, g in enumerate(groups[:-1]):
                if set(g) != {"0"}:
                    groups[i] = "0" * len(g)
                    return OrganCode(".".join(groups), CodeForm.QCVN_102)
            return None
        if len(groups) == 1:
            return None
        return OrganCode.parse(".".join(groups[1:]))

    def __str__(self) -> str:
        return self.value


def is_valid_organ_code(text: str) -> bool:
    try:
        OrganCode.parse(text)
    except OrganCodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class OrganEntry:
    """One agency in a registry (danh bạ): code, name, parent override, node endpoint, certificates (PEM)."""

    code: OrganCode
    name: str
    parent: OrganCode | None = None
    endpoint: str | None = None
    certificates: tuple[bytes, ...] = ()


class OrganRegistry:
    """In-memory registry of agencies; the source of truth for names and parents.

    A unit's parent is the registry's override when one is set, else the code's default parent.
    Persistent storage of the registry belongs to ``storage``; this type is what it loads into.
    """

    def __init__(self, entries: Iterable[OrganEntry] = ()) -> None:
        self._entries: dict[OrganCode, OrganEntry] = {}
        for entry in entries:
            self.add(entry)

    def add(self, entry: OrganEntry) -> None:
        if entry.code in self._entries:
            raise OrganCodeError(f"organisation {entry.code} is already registered")
        if entry.parent == entry.code:
            raise OrganCodeError(f"organisation {entry.code} cannot be its own parent")
        self._entries[entry.code] = entry

    def get(self, code: OrganCode | str) -> OrganEntry | None:
        return self._entries.get(_as_code(code))

    def __contains__(self, code: object) -> bool:
        if isinstance(code, str):
            if not is_valid_organ_code(code):
                return False
            code = OrganCode.parse(code)
        return isinstance(code, OrganCode) and code in self._entries

    def __iter__(self) -> Iterator[OrganEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def parent_of(self, code: OrganCode | str) -> OrganCode | None:
        code = _as_code(code)
        entry = self._entries.get(code)
        if entry is not None and entry.parent is not None:
            return entry.parent
        return code.default_parent()

    def ancestors(self, code: OrganCode | str) -> tuple[OrganCode, ...]:
        """Parents up to the top, nearest first; a cycle in the overrides is an error, not a hang."""
        seen = [_as_code(code)]
        while (parent := self.parent_of(seen[-1])) is not None:
            if parent in seen:
                chain = " → ".join(str(c) for c in [*seen, parent])
                raise OrganCodeError(f"the registry's parents form a cycle: {chain}")
            seen.append(parent)
        return tuple(seen[1:])


def _as_code(code: OrganCode | str) -> OrganCode:
    return code if isinstance(code, OrganCode) else OrganCode.parse(code)
