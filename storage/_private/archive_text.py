"""Accent-insensitive words of Vietnamese text for the archive's full-text search (tìm kiếm không dấu).

Subjects are indexed, and queries read, through the same :func:`fold`: NFD, combining marks dropped, đ → d,
casefold. "bao cao ngan sach" then finds "Báo cáo ngân sách", and "BÁO CÁO" finds it too. Words are runs of
letters and digits; everything else separates them, so "123/BC-UBND" is the three words ``123 bc ubnd``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from storage.errors import ArchiveQueryError

_WORD = re.compile(r"[^\W_]+")
# A query chunk: a "quoted phrase" or a run of non-blank characters, with an optional trailing * (prefix).
_CHUNK = re.compile(r'"([^"]*)"(\*?)|(\S+)')
MAX_QUERY_TERMS = 16


class _FoldTable(dict[int, str]):
    """Code point → its folded text, filled on first sight: ``str.translate`` then folds at C speed."""

    def __missing__(self, code_point: int) -> str:
        folded = _fold_slow(chr(code_point))
        self[code_point] = folded
        return folded


def _fold_slow(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    # đ (U+0111) is a letter of its own, not d + a mark: NFD leaves it, so it is mapped by hand.
    lowered = bare.replace("đ", "d").replace("Đ", "d").casefold()
    # casefold can bring marks back (İ → i + U+0307): fold those too.
    return "".join(c for c in unicodedata.normalize("NFD", lowered) if not unicodedata.combining(c))


_FOLD_TABLE = _FoldTable()


def fold(text: str) -> str:
    """``text`` without accents or case: NFD, combining marks removed, đ/Đ → d, casefold.

    Character by character through a cache; the same as folding the whole string, since NFD decomposes each
    character on its own and only reorders the combining marks, which are all dropped.
    """
    return text.translate(_FOLD_TABLE)


def words(text: str) -> list[str]:
    """The folded words of ``text``, in order."""
    return _WORD.findall(fold(text))


def folded_text(text: str) -> str:
    """What the index stores for ``text``: its folded words, one space between, one space at each end.

    The spaces at the ends let the portable fallback match whole words with ``LIKE '% word %'``.
    """
    found = words(text)
    return f" {' '.join(found)} " if found else ""


@dataclass(frozen=True)
class Term:
    """One thing a subject must contain: a word, or a phrase of consecutive words; ``prefix``: the last is a prefix."""

    words: tuple[str, ...]
    prefix: bool = False


def parse_text_query(text: str) -> tuple[Term, ...]:
    """The terms of a search text: every term must match (AND).

    ``ngân sách`` → two words; ``"ngân sách"`` → one phrase; ``ngan*`` → a word starting with "ngan";
    ``123/BC-UBND`` → the phrase ``123 bc ubnd``. Raises :class:`ArchiveQueryError` when nothing searchable is left.
    """
    terms: list[Term] = []
    for match in _CHUNK.finditer(text):
        quoted, quoted_star, bare = match.groups()
        if bare is not None:
            prefix = bare.endswith("*")
            found = words(bare)
        else:
            prefix = quoted_star == "*"
            found = words(quoted)
        if found:
            terms.append(Term(tuple(found), prefix))
    if not terms:
        raise ArchiveQueryError(f"text search {text!r} has no letters or digits to look for")
    if len(terms) > MAX_QUERY_TERMS:
        raise ArchiveQueryError(f"text search has {len(terms)} terms; at most {MAX_QUERY_TERMS}")
    return tuple(dict.fromkeys(terms))


def fts5_match(terms: tuple[Term, ...]) -> str:
    """An SQLite FTS5 MATCH expression requiring every term; words are alphanumeric, so quoting is safe."""
    return " AND ".join(f'"{" ".join(t.words)}"' + (" *" if t.prefix else "") for t in terms)


def like_patterns(terms: tuple[Term, ...]) -> list[str]:
    """``LIKE`` patterns over :func:`folded_text`, one per term (the fallback where FTS5 is absent)."""
    return [f"% {' '.join(t.words)}{'%' if t.prefix else ' %'}" for t in terms]
