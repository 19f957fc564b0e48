"""Events of the node (built, signed, sent, accepted, delivered, verified, status, refused, auth failures).

Each event is logged and, once the audit log is attached to the runtime, appended to it as one leaf.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from node._private.text import inert

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from node.runtime import NodeRuntime

log = logging.getLogger("lienthong.events")

# Events an auditor must notice: they are logged as warnings.
NOTABLE = frozenset({"auth.failed", "envelope.refused", "delivery.dead", "verification.failed", "status.unrelated"})


def log_safe(value: object) -> str:
    """``value`` as text for one log line (values come from other nodes and clients: a line break in one
    would start a log line of their choosing): see :func:`node._private.text.inert`."""
    return inert(str(value))


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
