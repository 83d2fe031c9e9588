"""A cap on things in use, whose uncontended take is a plain call.

asyncio.Semaphore's acquire is a coroutine even when a slot is free, and its
`locked()` walks the waiters: together about 1% of a proxied request's
instructions, for the upstream connection cap that is almost never reached.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class Slots:
    """`count` slots; waiters are served first come, first served."""

    __slots__ = ("_waiters", "free")

    def __init__(self, count: int) -> None:
        self.free = count
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_take(self) -> bool:
        """Take a slot if one is free and nobody is waiting for it."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        """Take a slot, waiting for one to be given back if none is free."""
        if self.try_take():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a slot just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):  # give() may have dropped it
                    self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        """Give a slot back: straight to the first waiter, if there is one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1
