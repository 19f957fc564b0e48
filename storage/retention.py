"""How long archived objects stay locked, per document class (thời hạn lưu giữ theo loại tài liệu).

The class is a free-form label chosen by the caller (``report``, ``status``, ``verification`` ...): ``storage``
knows bytes, not edXML, so the mapping from a message to its class lives with the caller and only the
number of days lives here, from configuration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from storage.errors import ObjectStoreConfigError

# 100 years: beyond that a typo (days entered as hours, an extra zero) is likelier than a real rule,
# and some S3 servers refuse retain-until dates that far out anyway.
MAX_RETENTION_DAYS = 36_500
_CLASS_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def _check_days(what: str, days: object) -> int:
    # bool is an int subclass: "true" in a YAML file must not silently mean one day.
    if isinstance(days, bool) or not isinstance(days, int):
        raise ObjectStoreConfigError(f"retention for {what} must be a whole number of days, got {days!r}")
    if not 0 <= days <= MAX_RETENTION_DAYS:
        raise ObjectStoreConfigError(
            f"retention for {what} must be between 0 and {MAX_RETENTION_DAYS} days, got {days}"
        )
    return days


def check_document_class(name: object) -> str:
    """*name* if it is a usable document class label (it travels as S3 metadata, so ASCII only)."""
    if not isinstance(name, str) or not _CLASS_NAME.fullmatch(name):
        raise ObjectStoreConfigError(f"document class {name!r} must be 1-64 lowercase letters, digits, '_', '.' or '-'")
    return name


@dataclass(frozen=True)
class RetentionPolicy:
    """Days of COMPLIANCE retention for each document class; ``default_days`` for any other class or none.

    ``0`` days means no retention lock (the object is still write-once, but may be deleted).
    Example: ``RetentionPolicy(default_days=3650, per_class={"report": 3650, "status": 1825})``
    (báo cáo 10 năm, thông điệp trạng thái 5 năm).
    """

    default_days: int
    per_class: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_days("the default", self.default_days)
        if not isinstance(self.per_class, Mapping):
            raise ObjectStoreConfigError(f"per-class retention must be a mapping, got {type(self.per_class).__name__}")
        checked: dict[str, int] = {}
        for name, days in self.per_class.items():
            checked[check_document_class(name)] = _check_days(f"document class {name!r}", days)
        # A read-only copy: the policy is shared by every store and must not change under them.
        object.__setattr__(self, "per_class", MappingProxyType(checked))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RetentionPolicy:
        """Build from a config mapping ``{"default_days": 3650, "per_class": {"report": 3650}}``."""
        unknown = set(config) - {"default_days", "per_class"}
        if unknown:
            raise ObjectStoreConfigError(f"unknown retention setting(s): {', '.join(sorted(map(str, unknown)))}")
        if "default_days" not in config:
            raise ObjectStoreConfigError("retention config needs default_days")
        return cls(default_days=config["default_days"], per_class=config.get("per_class") or {})

    def days_for(self, document_class: str | None) -> int:
        """Retention days of *document_class* (the default for ``None`` or an unconfigured class)."""
        if document_class is None:
            return self.default_days
        return self.per_class.get(document_class, self.default_days)

    def retain_until(self, document_class: str | None, now: datetime) -> datetime | None:
        """When the lock of an object stored at *now* ends, or ``None`` for no lock."""
        days = self.days_for(document_class)
        return now + timedelta(days=days) if days else None


# Ten years unless configured: the longest common period for exchanged reports, so that a node
# started without configuration errs on the side of keeping things.
DEFAULT_RETENTION = RetentionPolicy(default_days=3650)
