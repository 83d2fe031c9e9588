"""Waiting without being held up: a blocking read in a thread that nothing waits for at
exit, and the first of several waits.

A reload reads the config files in a thread. A file that never answers (a FIFO, a hung
network mount) must neither hold up a stop nor the process's exit: the executor
`asyncio.to_thread` uses joins its threads at exit, so the read runs in a daemon thread
of its own, abandoned if need be.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def aside(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """`fn(*args)` run in a daemon thread; its result (or exception) on the loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():  # given up on meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting task, as to_thread does
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=run, name=getattr(fn, "__name__", "aside"), daemon=True).start()
    return future


async def first(*waits: Awaitable[Any]) -> None:
    """Wait until one of `waits` is over; the others are cancelled, and waited for."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
