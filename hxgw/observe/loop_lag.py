"""How late the event loop runs: a timer that should fire every `INTERVAL` seconds, and
how much later than that it did. A loop busy with more work than it can do shows it here
before requests time out, so /readyz can send traffic elsewhere."""

from __future__ import annotations

import asyncio
from collections import deque

INTERVAL = 0.25
WINDOW = 8
"""Lag is the worst of the last WINDOW ticks (2 s): one slow tick is not overload."""


class LoopLag:
    def __init__(self) -> None:
        self._recent: deque[float] = deque([0.0], maxlen=WINDOW)

    @property
    def seconds(self) -> float:
        """The worst lag of the last few ticks."""
        return max(self._recent)

    async def watch(self) -> None:
        """Runs for the life of the daemon."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + INTERVAL
            await asyncio.sleep(INTERVAL)
            self._recent.append(max(0.0, loop.time() - due))
