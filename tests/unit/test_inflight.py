"""Shutdown's view of the requests being served."""

from __future__ import annotations

import asyncio

from hxgw.runtime import Inflight


async def _serving(inflight: Inflight, seconds: float) -> None:
    task = asyncio.current_task()
    assert task is not None
    inflight.add(task)
    try:
        await asyncio.sleep(seconds)
    finally:
        inflight.discard(task)


async def test_waiting_with_nothing_in_flight_returns_at_once():
    assert await Inflight().wait_idle(0)


async def test_the_wait_ends_when_the_last_request_does():
    inflight = Inflight()
    requests = [asyncio.create_task(_serving(inflight, s)) for s in (0.02, 0.05)]
    await asyncio.sleep(0)
    assert len(inflight) == 2
    assert await inflight.wait_idle(5)
    assert len(inflight) == 0 and all(r.done() for r in requests)


async def test_a_request_that_outlasts_the_wait_makes_it_false_and_a_later_wait_still_works():
    inflight = Inflight()
    request = asyncio.create_task(_serving(inflight, 0.2))
    await asyncio.sleep(0)
    assert not await inflight.wait_idle(0.01)
    assert await inflight.wait_idle(5)
    assert request.done()


async def test_cancel_all_cancels_every_request_in_flight():
    inflight = Inflight()
    requests = [asyncio.create_task(_serving(inflight, 30)) for _ in range(3)]
    await asyncio.sleep(0)
    assert inflight.cancel_all() == 3
    assert await inflight.wait_idle(5)
    assert all(r.cancelled() for r in requests)
