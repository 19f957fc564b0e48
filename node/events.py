"""Events of the node (built, signed, sent, accepted, delivered, verified, status, refused, auth failures).

Each event is logged and, once the audit log is attached to the runtime, appended to it as one leaf.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from node.runtime import NodeRuntime

log = logging.getLogger("lienthong.events")

# Events an auditor must notice: they are logged as warnings.
NOTABLE = frozenset({"auth.failed", "envelope.refused", "message.refused", "delivery.dead", "verification.failed"})
# Values come from other nodes and clients (a refusal's reason, an id): a line break in one would start a log
# line of their choosing. Control characters and Unicode line separators are written escaped instead.
_ESCAPED = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))} | {
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def log_safe(value: object) -> str:
    """``value`` as text for one log line: control characters and line separators escaped."""
    return str(value).translate(_ESCAPED)


def record_event(runtime: NodeRuntime, event_type: str, *, session: Session | None = None, **fields: Any) -> None:
    """Record one event: the log line always, and a leaf of the audit log.

    With ``session`` the leaf is part of that session's transaction: the event is in the log if and only
    if the change it describes was committed.
    """
    event = {"type": event_type, "node": runtime.settings.node_id, "time": datetime.now(UTC).isoformat(), **fields}
    level = logging.WARNING if event_type in NOTABLE else logging.INFO
    log.log(level, "%s %s", event_type, " ".join(f"{k}={log_safe(v)}" for k, v in fields.items()))
    if session is not None:
        runtime.audit.append_in(session.connection(), [event])
    else:
        runtime.audit.append(event)
