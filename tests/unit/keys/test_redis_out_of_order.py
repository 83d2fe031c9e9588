"""What reaches Redis out of order: a batch the network held up past the release the
gateway's next connection sent for it; a correction for a reservation Redis never saw (it
restarted without its data); a key whose spend another gateway is reading back."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from hxgw.keys.limiter_redis import RedisLimiter, _reserve_line
from hxgw.keys.limits import KeyLimits, LimitsUnavailable
from hxgw.keys.redis_batch import _Operation
from hxgw.keys.resp import RespConnection
from tests.redis_server import RedisServer

NOW = 1_700_000_000.0


async def _late_batch(limiter: RedisLimiter, url: str, key_name: str, line: str) -> bytes:
    """`line` sent on a connection of its own, as a batch the network held up arrives: after
    what the limiter sent since (its reply goes to a gateway that no longer listens)."""
    connection = await RespConnection.open(url)
    (reply,) = connection.send(
        [limiter._batches._command(key_name, [_Operation(key_name, line, None)])]
    )
    answer = await reply
    connection.close()
    assert isinstance(answer, bytes)
    return answer


async def test_a_reservation_that_arrives_after_its_release_is_not_made(
    redis_server: RedisServer,
) -> None:
    limiter, limits = RedisLimiter(redis_server.url), KeyLimits(max_parallel=2)
    assert (await limiter.reserve("k", limits, 1, 0.0, NOW)).allowed  # the script loaded
    late = _reserve_line(limits, "late.1", 1, 0.0, NOW)
    limiter._batches.correct("k", f"x {NOW!r} late.1")  # its release, sent first
    probe = await limiter.reserve("other", limits, 1, 0.0, NOW)  # flushes the release
    assert probe.allowed
    answer = await _late_batch(limiter, redis_server.url, "k", late)
    assert not answer.startswith(b"- ")
    second = await limiter.reserve("k", limits, 1, 0.0, NOW + 1)
    await limiter.close()
    # Before, the late reservation was made and held its slot until its lease ended.
    assert second.allowed


async def _restart(redis_server: RedisServer, limiter: RedisLimiter) -> None:
    """Redis restarted without its data, and the limiter connected to it again."""
    redis_server.stop()
    redis_server.start()
    for _ in range(50):
        with contextlib.suppress(LimitsUnavailable):
            if (await limiter.reserve("other", KeyLimits(), 0, 0.0, NOW)).allowed:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the limiter did not connect again")


async def test_a_correction_redis_never_saw_the_reservation_of_charges_its_whole_cost(
    redis_server: RedisServer,
) -> None:
    limiter, limits = RedisLimiter(redis_server.url, probe_every=0), KeyLimits(budget=1.0)
    decision = await limiter.reserve("k", limits, 1, 0.5, NOW)
    assert decision.reservation is not None
    await _restart(redis_server, limiter)
    await limiter.reconcile(decision.reservation, 1, 0.2, NOW + 1)
    usage = (await limiter.reserve("k", limits, 0, 0.0, NOW + 2)).usage
    await limiter.close()
    # Before, it was taken for a lease that had run out and charged its 0.5: 0.2 - 0.5.
    assert usage.spent == pytest.approx(0.2)


async def test_a_correction_whose_lease_ran_out_here_charges_the_difference(
    redis_server: RedisServer,
) -> None:
    limiter, limits = RedisLimiter(redis_server.url, lease_s=10), KeyLimits(budget=1.0)
    decision = await limiter.reserve("k", limits, 1, 0.5, NOW)
    assert decision.reservation is not None
    expired = await limiter.reserve("k", limits, 0, 0.0, NOW + 11)  # the lease ran out
    assert expired.usage.spent == pytest.approx(0.5)
    await limiter.reconcile(decision.reservation, 1, 0.2, NOW + 12)
    usage = (await limiter.reserve("k", limits, 0, 0.0, NOW + 13)).usage
    await limiter.close()
    assert usage.spent == pytest.approx(0.2)
