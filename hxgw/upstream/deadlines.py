"""Deadlines for many requests at once, on few timers.

Why not `asyncio.timeout` on the hot path: each one starts and stops a loop
timer, about 12 µs under uvloop, 5% of a proxied request's CPU. Here a deadline
is rounded up to the next `GRAIN` and every deadline in the same slot shares one
timer, so under load a timer serves dozens of requests, and entering and leaving
a deadline is a set insert and removal. The behaviour is asyncio.timeout's: when
the deadline passes, the task is cancelled, and the cancellation leaves the
block as TimeoutError, unless something else cancelled the task too. It is a
plain `with` block, not `async with`: entering and leaving never wait, and two
coroutines fewer per request are worth having.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType
from typing import Any


class Deadlines:
    """The slots of pending deadlines, each with the one timer that ends them."""

    # How late a deadline may fire: fine for timeouts of a second or more.
    GRAIN = 0.01

    def __init__(self) -> None:
        self._slots: dict[int, set[Deadline]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        """Each slot's timer, cancelled once its last deadline is left: a timer left to
        run out would hold its slot for the whole timeout (a plain answer's 600 s), tens of
        thousands of them under a steady load."""

    def after(self, seconds: float, task: asyncio.Task[Any] | None = None) -> Deadline:
        """A deadline `seconds` from now, for a `with` block in `task` (the current one
        when not given: naming it saves a lookup)."""
        return Deadline(self, seconds, task)

    def _add(self, deadline: Deadline, loop: asyncio.AbstractEventLoop, when: float) -> None:
        slot = math.ceil(when / self.GRAIN)
        members = self._slots.get(slot)
        if members is None:
            members = self._slots[slot] = set()
            self._timers[slot] = loop.call_at(slot * self.GRAIN, self._expire, slot)
        members.add(deadline)
        deadline.slot, deadline.key = members, slot

    def _left(self, slot: int) -> None:
        """The last deadline of `slot` was left before it passed: its timer goes too."""
        timer = self._timers.pop(slot, None)
        if timer is not None:
            timer.cancel()
        self._slots.pop(slot, None)

    def _expire(self, slot: int) -> None:
        self._timers.pop(slot, None)
        for deadline in self._slots.pop(slot, ()):
            deadline.expire()


class Deadline:
    """One request's deadline: a context manager, used like asyncio.timeout's."""

    __slots__ = ("_cancelling", "_deadlines", "_seconds", "_task", "expired", "key", "slot")

    def __init__(
        self, deadlines: Deadlines, seconds: float, task: asyncio.Task[Any] | None
    ) -> None:
        self._deadlines = deadlines
        self._seconds = seconds
        self._task = task
        self._cancelling = 0
        self.expired = False
        self.slot: set[Deadline] | None = None
        self.key = 0
        """The slot's number, while it is in one."""

    def __enter__(self) -> Deadline:
        task = self._task or asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        loop = task.get_loop()
        if self._seconds <= 0:
            loop.call_soon(self.expire)
        elif math.isinf(self._seconds):
            pass  # no deadline at all (a timeout of .inf in the config)
        else:
            self._deadlines._add(self, loop, loop.time() + self._seconds)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        members = self.slot
        if members is not None:
            members.discard(self)
            self.slot = None
            if not members:
                self._deadlines._left(self.key)
        task, self._task = self._task, None
        # When expired, ours was one of the cancellations: take it back, and if it was
        # the only one, the block ran out of time rather than being stopped from outside.
        if (
            self.expired
            and task is not None
            and task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc

    def expire(self) -> None:
        """The deadline passed: cancel the task if it is still inside the block."""
        self.slot = None
        if self._task is not None and not self.expired:
            self.expired = True
            self._task.cancel()
