"""Events of the node (built, signed, sent, accepted, delivered, verified, status, refused, auth failures).

Each event is logged and, once the audit log is attached to the runtime, appended to it as one leaf.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

log = logging.getLogger("lienthong.events")

# Events an auditor must notice: they are logged as warnings.
NOTABLE = frozenset({"auth.failed", "envelope.refused", "message.refused", "delivery.dead", "verification.failed"})


def record_event(runtime: NodeRuntime, event_type: str, **fields: Any) -> None:
    """Record one event: the log line always, the audit log when the runtime has one."""
    event = {"type": event_type, "node": runtime.settings.node_id, "time": datetime.now(UTC).isoformat(), **fields}
    level = logging.WARNING if event_type in NOTABLE else logging.INFO
    log.log(level, "%s %s", event_type, " ".join(f"{k}={v}" for k, v in fields.items()))
    sink = getattr(runtime, "audit_sink", None)
    if sink is not None:
        sink(event)
