"""Text rules shared by the model and the parser: NFC, and only characters XML 1.0 can carry."""

from __future__ import annotations

import re
import unicodedata

# XML 1.0 Char production minus the C0 controls other than TAB, LF, CR.
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def first_non_xml_char(value: str) -> int | None:
    match = _NOT_XML_CHAR.search(value)
    return match.start() if match else None


def normalize_text(value: str) -> str:
    """NFC-normalise ``value`` and refuse characters XML 1.0 cannot represent."""
    bad = first_non_xml_char(value)
    if bad is not None:
        raise ValueError(f"character U+{ord(value[bad]):04X} at position {bad} cannot be carried in XML")
    return unicodedata.normalize("NFC", value)
