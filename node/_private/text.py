"""Text from outside (a sender, another node, a client) made inert before it is shown or logged."""

from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(c: str) -> str:
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def inert(text: str) -> str:
    """``text`` with what is not visible text written as escapes: control characters (a line break that would
    start a log line of someone else's choosing, a terminal's ESC sequences) and invisible format and
    separator characters (direction overrides such as U+202E, which reverse what follows; U+2028). Spaces
    stay; text that is all printable (nearly all of it: Vietnamese included) is returned as it is."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or unicodedata.category(c) == "Zs" else _escape(c) for c in text)
