"""Message specs: the YAML a clerk writes to describe a message for ``lienthong edxml build``.

A document spec holds the MessageHeader fields at the top level (``from``, ``to``, ``code``,
``subject`` …), plus ``business``, ``trace`` and ``attachments`` (files named relative to the spec).
A status spec says ``kind: status``. docs/examples/monthly-report.yaml is a full example.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from node.errors import NodeError
from schemas import DocumentMessage, Message, StatusMessage, guess_content_type, make_document_id

MAX_SPEC_BYTES = 1024 * 1024
_DOCUMENT_PARTS = ("business", "trace", "attachments")


class SpecError(NodeError):
    """A spec file cannot be turned into a message; the text says which field and why."""


def load_spec(path: Path) -> Message:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SpecError(f"{path}: cannot read: {e.strerror}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: spec is larger than {MAX_SPEC_BYTES} bytes")
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec is a mapping of fields, got {type(data).__name__}")
    return spec_to_message(data, base_dir=path.parent, name=str(path))


def spec_to_message(
    data: dict[str, Any],
    *,
    base_dir: Path | None = None,
    uploads: Mapping[str, bytes] | None = None,
    name: str = "spec",
) -> Message:
    """The message a spec describes. Attachments are read from files relative to ``base_dir`` (a spec on the
    clerk's own disk), or, for a spec that came over the network, only from ``uploads`` by exact name: a
    remote caller must never make the node read a file of its own (its keys, its database)."""
    if (base_dir is None) == (uploads is None):
        raise ValueError("give exactly one of base_dir and uploads")
    data = dict(data)
    kind = data.pop("kind", "document")
    trace = data.pop("trace", [])
    try:
        if kind == "status":
            return StatusMessage.model_validate({"header": data, "trace": trace})
        if kind != "document":
            raise SpecError(f"{name}: kind must be 'document' or 'status', not {kind!r}")
        business = dict(data.pop("business", None) or {})
        attachments = [
            _attachment(a, i, base_dir, uploads, name) for i, a in enumerate(data.pop("attachments", None) or [])
        ]
        if "document_id" not in data:
            data["document_id"] = _conventional_id(data, name)
        business.setdefault("document_id", data["document_id"])
        return DocumentMessage.model_validate(
            {"header": data, "business": business, "trace": trace, "attachments": attachments}
        )
    except ValidationError as e:
        # a list whose only item is bad is also "too short": that follows from the item's own error, and
        # listing it too sent the clerk looking for a second mistake
        within = [err["loc"] for err in e.errors()]
        errors = [
            err
            for err in e.errors()
            if not (err["type"] == "too_short" and any(loc[: len(err["loc"])] == err["loc"] != loc for loc in within))
        ]
        lines = []
        for err in errors:
            loc = ".".join(str(p) for p in err["loc"] if p not in ("header",))
            lines.append(f"  {loc}: {err['msg'].removeprefix('Value error, ')}")
        raise SpecError(f"{name}: {len(errors)} problem(s):\n" + "\n".join(lines)) from None


def _conventional_id(data: dict[str, Any], name: str) -> str:
    try:
        return make_document_id(
            str(data["from"]["organ_id"]),
            _as_date(data["promulgation_info"]["promulgation_date"]),
            str(data["code"]["code_number"]),
            str(data["code"].get("code_notation", "")),
        )
    except (KeyError, TypeError) as e:
        raise SpecError(
            f"{name}: give document_id, or from.organ_id, code.code_number and "
            f"promulgation_info.promulgation_date to derive it (missing {e})"
        ) from None
    except ValueError as e:
        raise SpecError(f"{name}: cannot derive document_id: {e}") from None


def _as_date(value: Any) -> Any:
    from datetime import date

    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value).replace("/", "-"))


def _attachment(
    item: Any, index: int, base_dir: Path | None, uploads: Mapping[str, bytes] | None, name: str
) -> dict[str, Any]:
    if isinstance(item, str):
        item = {"file": item}
    if not isinstance(item, dict) or "file" not in item:
        raise SpecError(f"{name}: attachments[{index}] needs a 'file'")
    spec: dict[str, Any] = dict(item)
    reference = str(spec.pop("file"))
    if uploads is not None:
        if reference not in uploads:
            uploaded = ", ".join(repr(n) for n in uploads) or "none"
            raise SpecError(
                f"{name}: attachments[{index}]: file {reference!r} is not one of the uploaded files ({uploaded})"
            )
        data, filename = uploads[reference], reference
    else:
        assert base_dir is not None
        file = base_dir / reference
        try:
            data = file.read_bytes()
        except OSError as e:
            raise SpecError(f"{name}: attachments[{index}]: cannot read {file}: {e.strerror}") from None
        filename = file.name
    spec.setdefault("name", filename)
    spec.setdefault("content_type", guess_content_type(filename))
    spec.setdefault("content_id", str(index + 1))
    spec["data"] = data
    return spec
