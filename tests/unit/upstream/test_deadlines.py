"""Shared-timer deadlines: asyncio.timeout's behaviour, without a timer per request."""

from __future__ import annotations

import asyncio

import pytest

from hxgw.upstream.deadlines import Deadlines


async def test_a_block_that_outlives_its_deadline_raises_timeout_error() -> None:
    deadlines = Deadlines()
    with pytest.raises(TimeoutError), deadlines.after(0.05):
        await asyncio.sleep(5)


async def test_a_deadline_given_its_task_outright_times_out_the_same_way() -> None:
    deadlines = Deadlines()
    with pytest.raises(TimeoutError), deadlines.after(0.05, asyncio.current_task()):
        await asyncio.sleep(5)


async def test_a_block_that_ends_in_time_is_not_cancelled_afterwards() -> None:
    deadlines = Deadlines()
    with deadlines.after(0.05):
        await asyncio.sleep(0)
    await asyncio.sleep(0.15)  # past the deadline: the task must still be running
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_deadline_already_past_expires_at_the_first_wait() -> None:
    deadlines = Deadlines()
    with pytest.raises(TimeoutError), deadlines.after(0):
        await asyncio.sleep(1)


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    deadlines = Deadlines()

    async def guarded() -> None:
        with deadlines.after(5):
            await asyncio.sleep(5)

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_outside_cancellation_at_the_deadline_is_not_turned_into_a_timeout() -> None:
    deadline = Deadlines().after(5)
    started = asyncio.Event()

    async def guarded() -> None:
        with deadline:
            started.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(guarded())
    await started.wait()
    deadline.expire()  # the deadline passes ...
    task.cancel()  # ... and someone else cancels too, before the task runs again
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_deadlines_entered_together_share_a_timer() -> None:
    deadlines = Deadlines()

    async def guarded() -> None:
        with deadlines.after(30):
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(guarded()) for _ in range(100)]
    await asyncio.sleep(0.01)
    assert 1 <= len(deadlines._slots) <= 2  # a slot boundary may fall between them
    await asyncio.gather(*tasks)


async def test_a_finished_deadline_is_not_kept_until_its_timer_fires() -> None:
    deadlines = Deadlines()
    for _ in range(1000):
        with deadlines.after(30):
            pass
    assert sum(len(members) for members in deadlines._slots.values()) == 0


async def test_an_infinite_deadline_never_expires_and_holds_no_timer() -> None:
    deadlines = Deadlines()
    with deadlines.after(float("inf")):
        await asyncio.sleep(0.05)
    assert deadlines._slots == {}


async def test_a_slot_whose_deadlines_were_all_left_holds_no_timer() -> None:
    # A timer left to run out holds its slot for the whole timeout: thousands of them
    # under a steady load, each request in a slot of its own.
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    before = len(loop._scheduled)  # type: ignore[attr-defined]
    for _ in range(20):
        with deadlines.after(600):
            await asyncio.sleep(0.011)  # the next one falls in another slot
    live = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    assert (deadlines._slots, deadlines._timers) == ({}, {})
    assert len(live) <= before
