"""Failed authentications are audited, but not at a stranger's pace.

Every failed login is an audit event, and the audit log only grows: without a bound, anyone able to reach
the node could grow its database as fast as they can send requests. Per client, the first ``per_minute``
failures of each minute are recorded, and at most ``total_per_minute`` of all clients together (one IPv6 host
holds a whole /64, and anyone may hold many addresses: a bound per address alone is no bound). The rest are
counted, and the count is recorded with the next failure that is: ``suppressed`` for that client's own,
``suppressed_elsewhere`` for those of clients forgotten since (the quietest are, beyond ``max_clients``), so
the log still accounts for every one of them.
"""

from __future__ import annotations

import ipaddress
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


def client_key(client: str | None) -> str:
    """Whose allowance a failure counts against: the address, or its /64 for IPv6 (one host's usual share)."""
    if not client:
        return "?"
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class AuthFailureLimiter:
    def __init__(
        self,
        per_minute: int = 30,
        *,
        total_per_minute: int = 300,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute, self.total_per_minute, self.max_clients = per_minute, total_per_minute, max_clients
        self._clock = clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._all = _Window(clock())
        self._forgotten = 0  # suppressed failures of clients no longer remembered, not yet recorded
        self._lock = threading.Lock()

    def admit(self, client: str | None) -> int | None:
        """Whether to record this failure: None if not, else how many of this client's went unrecorded before it.

        When it is recorded, :meth:`forgotten` says how many of other clients, since forgotten, went unrecorded.
        """
        now = self._clock()
        key = client_key(client)
        with self._lock:
            if now - self._all.started >= 60:
                self._all = _Window(now)
            window = self._windows.get(key)
            if window is None or now - window.started >= 60:
                carried = window.suppressed if window is not None else 0
                window = self._windows[key] = _Window(now, suppressed=carried)
            self._windows.move_to_end(key)
            while len(self._windows) > self.max_clients:
                _, quiet = self._windows.popitem(last=False)  # the longest quiet client; its count is kept apart
                self._forgotten += quiet.suppressed
            if window.recorded >= self.per_minute or self._all.recorded >= self.total_per_minute:
                window.suppressed += 1
                return None
            window.recorded += 1
            self._all.recorded += 1
            suppressed, window.suppressed = window.suppressed, 0
            return suppressed

    def forgotten(self) -> int:
        """The unrecorded failures of forgotten clients, to record with the failure just admitted (then reset)."""
        with self._lock:
            count, self._forgotten = self._forgotten, 0
            return count
