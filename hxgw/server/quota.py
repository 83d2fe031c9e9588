"""A count of events per client address over a window, bounded in the addresses it
keeps: how the server limits the lines it writes for a client that floods it."""

from __future__ import annotations

import time


class PerAddressQuota:
    """At most `limit` events per client address in each `window` seconds, for at most
    `addresses` addresses at once (a flood from many addresses starts the count over
    rather than grow the table)."""

    def __init__(self, limit: int = 10, window: float = 60.0, addresses: int = 4096) -> None:
        self.limit, self.window, self.addresses = limit, window, addresses
        self._counts: dict[str, tuple[float, int]] = {}

    def allow(self, address: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        since, count = self._counts.get(address, (now, 0))
        if now - since >= self.window:
            since, count = now, 0
        if len(self._counts) >= self.addresses and address not in self._counts:
            self._counts.clear()
        self._counts[address] = (since, count + 1)
        return count < self.limit
