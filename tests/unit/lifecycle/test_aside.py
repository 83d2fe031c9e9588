"""aside and first: a blocking read that nothing waits for at exit, and the first of
several waits."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hxgw.lifecycle.aside import aside, first


async def test_aside_gives_the_result_of_the_call_in_another_thread():
    assert await aside(lambda a, b: (a + b, threading.current_thread().daemon), 2, 3) == (5, True)


async def test_aside_raises_what_the_call_raised():
    def broken() -> None:
        raise ValueError("no such file")

    with pytest.raises(ValueError, match="no such file"):
        await aside(broken)


async def test_a_call_given_up_on_is_left_to_finish_alone():
    release = threading.Event()
    read = aside(release.wait)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(read, 0.05)
    release.set()  # its late answer lands on a future already done: nothing raises
    await asyncio.sleep(0.05)


async def test_first_returns_when_one_wait_is_over_and_cancels_the_others():
    never = asyncio.Event()
    soon = asyncio.create_task(asyncio.sleep(0.01))
    waiting = asyncio.ensure_future(never.wait())
    await first(soon, waiting)
    assert soon.done() and waiting.cancelled()
