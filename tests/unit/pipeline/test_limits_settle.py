"""A request's reservations reconciled when it ends: all of them, whatever the client
does meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from hxgw.config import KeyLimits
from hxgw.keys.limiter_shared import SharedLimiter
from hxgw.keys.per_user import user_name
from hxgw.pipeline.limits import _reconciled


async def test_a_client_leaving_between_two_reconciles_leaves_neither_unsettled(tmp_path: Path):
    # The workers' limiter reconciles in its thread: the end user's correction was under
    # way there when the client left, and the key's own was never made, its slot held
    # for the lease.
    limiter = SharedLimiter(tmp_path)
    limits, now = KeyLimits(max_parallel=1), time.time()
    user = await limiter.reserve(user_name("k", "ann"), KeyLimits(rpm=5), 10, 0.0, now)
    key = await limiter.reserve("k", limits, 10, 0.0, now)
    assert user.reservation is not None and key.reservation is not None
    made = [user.reservation, key.reservation]
    settling = asyncio.get_running_loop().create_task(_reconciled(limiter, made, 5, 0.0, now))
    await asyncio.sleep(0)  # in the thread now
    settling.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await settling
    assert (await limiter.reserve("k", limits, 10, 0.0, time.time())).allowed
    await limiter.close()


async def test_a_client_leaving_during_the_reconciles_still_ends_its_request_cancelled(
    tmp_path: Path,
):
    # Its reservations are reconciled all the same, and then the cancel goes on: the
    # request's task is not to run on as if the client were still there.
    limiter = SharedLimiter(tmp_path)
    now = time.time()
    user = await limiter.reserve(user_name("k", "ann"), KeyLimits(rpm=5), 10, 0.0, now)
    key = await limiter.reserve("k", KeyLimits(max_parallel=1), 10, 0.0, now)
    assert user.reservation is not None and key.reservation is not None
    made = [user.reservation, key.reservation]
    settling = asyncio.get_running_loop().create_task(_reconciled(limiter, made, 5, 0.0, now))
    await asyncio.sleep(0)
    settling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await settling
    await limiter.close()
