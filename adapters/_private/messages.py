"""Minimal request/response views for ``http_message_signatures``, whatever framework the bytes came from.

The library resolves components from objects with ``method``/``url``/``headers`` (requests) or
``status_code``/``headers``/``request`` (responses); ``headers`` must expose every field line in order.
We build these from plain header lists so that the same code serves httpx, Starlette and tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

HeaderInput = Mapping[str, str] | Iterable[tuple[str, str]]

# Placeholders for the request half of a response signature: we bind a response to its request only through
# the request's own ``Signature`` field (``"signature";key=...;req``), but the library still builds a view
# of the whole request, which needs a syntactically valid method and absolute URL. They never enter the
# signature base.
PLACEHOLDER_METHOD = "POST"
PLACEHOLDER_URL = "http://request.invalid/"


def header_pairs(headers: HeaderInput) -> list[tuple[str, str]]:
    """Every field line as ``(name, value)``; a Mapping gives one line per name."""
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


def header_values(pairs: Iterable[tuple[str, str]], name: str) -> list[str]:
    lname = name.lower()
    return [v for k, v in pairs if k.lower() == lname]


@dataclass
class Headers:
    """Field lines in order, case-insensitive lookups, appending writes (what the signer adds)."""

    lines: list[tuple[str, str]] = field(default_factory=list)

    def items(self) -> Iterable[tuple[str, str]]:
        return list(self.lines)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self.lines))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(k.lower() == name.lower() for k, _ in self.lines)

    def __setitem__(self, name: str, value: str) -> None:
        self.__delitem__(name)
        self.lines.append((name, value))

    def __delitem__(self, name: str) -> None:
        self.lines = [(k, v) for k, v in self.lines if k.lower() != name.lower()]


@dataclass
class RequestView:
    method: str
    url: str
    headers: Headers


@dataclass
class ResponseView:
    status_code: int
    headers: Headers
    request: RequestView


def absolute_url(url: str) -> str:
    """An absolute URL for the library's parser; a bare path gets a placeholder origin (authority is not signed)."""
    return url if "://" in url else "http://request.invalid" + (url if url.startswith("/") else "/" + url)
