"""Slots: a cap whose free slots are taken without waiting, and given back in order."""

from __future__ import annotations

import asyncio

import pytest

from hxgw.upstream.slots import Slots


def test_a_free_slot_is_taken_at_once_until_none_is_left():
    slots = Slots(2)
    assert slots.try_take() and slots.try_take()
    assert not slots.try_take()
    slots.give()
    assert slots.try_take()


async def test_waiters_get_given_back_slots_first_come_first_served():
    slots = Slots(1)
    await slots.take()
    order: list[int] = []

    async def wait(n: int) -> None:
        await slots.take()
        order.append(n)

    waiting = [asyncio.create_task(wait(n)) for n in range(3)]
    await asyncio.sleep(0)
    for _ in range(3):
        slots.give()
        await asyncio.sleep(0)
    await asyncio.gather(*waiting)
    assert order == [0, 1, 2]
    assert slots.free == 0


async def _held_and_awaited() -> tuple[Slots, asyncio.Task[None]]:
    """One slot, taken, and a task queued waiting for it."""
    slots = Slots(1)
    await slots.take()
    waiter = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    return slots, waiter


async def test_a_free_slot_is_not_taken_past_someone_waiting_for_it():
    slots, waiter = await _held_and_awaited()
    slots.give()  # handed to the waiter, which has not run yet
    assert not slots.try_take()
    await waiter
    assert slots.free == 0


async def test_a_cancelled_waiter_leaves_the_queue_and_takes_nothing():
    slots, waiter = await _held_and_awaited()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    slots.give()
    assert slots.free == 1
    assert slots.try_take()


async def test_a_slot_handed_to_a_waiter_cancelled_before_it_ran_passes_to_the_next():
    slots = Slots(1)
    await slots.take()
    first = asyncio.create_task(slots.take())
    second = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    slots.give()  # to `first`...
    first.cancel()  # ...which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)
    assert slots.free == 0
