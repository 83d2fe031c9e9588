"""The requests being served right now, so that shutdown can wait for them and
cancel what is left while their connections are still open."""

from __future__ import annotations

import asyncio


class Inflight:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()
        # Made only while shutdown waits: an Event cleared on every request and set at
        # every lull cost two method calls per request for a wait that happens once.
        self._idle: asyncio.Future[None] | None = None
        self.draining = False

    def __len__(self) -> int:
        return len(self._tasks)

    def add(self, task: asyncio.Task[object]) -> None:
        self._tasks.add(task)

    def discard(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not self._tasks and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    async def wait_idle(self, seconds: float) -> bool:
        """True when every request finished within `seconds`."""
        if not self._tasks:
            return True
        self._idle = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(seconds):
                await self._idle
        except TimeoutError:
            return False
        finally:
            self._idle = None
        return True

    def cancel_all(self) -> int:
        for task in self._tasks:
            task.cancel()
        return len(self._tasks)
