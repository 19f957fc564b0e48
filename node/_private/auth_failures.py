"""Failed authentications are audited, but not at a stranger's pace.

Every failed login is an audit event, and the audit log only grows: without a bound, anyone able to reach
the node could grow its database as fast as they can send requests. Per client address, the first
``per_minute`` failures of each minute are recorded; the rest are counted, and the count is recorded with the
next failure that is (``suppressed``), so the log still accounts for every one of them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Window:
    started: float
    recorded: int = 0
    suppressed: int = 0


class AuthFailureLimiter:
    def __init__(
        self, per_minute: int = 30, *, max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute, self.max_clients, self._clock = per_minute, max_clients, clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, client: str | None) -> int | None:
        """Whether to record this failure: None if not, else how many went unrecorded before it."""
        now = self._clock()
        key = client or "?"
        with self._lock:
            window = self._windows.get(key)
            if window is None or now - window.started >= 60:
                carried = window.suppressed if window is not None else 0
                window = self._windows[key] = _Window(now, suppressed=carried)
            self._windows.move_to_end(key)
            while len(self._windows) > self.max_clients:
                self._windows.popitem(last=False)  # the longest quiet client; its count is lost
            if window.recorded >= self.per_minute:
                window.suppressed += 1
                return None
            window.recorded += 1
            suppressed, window.suppressed = window.suppressed, 0
            return suppressed
