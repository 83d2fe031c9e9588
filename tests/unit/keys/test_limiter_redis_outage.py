"""Redis down: fail closed raises the typed error (a 503); fail open serves and counts
in this process until Redis answers again."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from hxgw.errors import Unavailable
from hxgw.keys.limiter_redis import RedisLimiter
from hxgw.keys.limits import KeyLimits, LimitsUnavailable
from tests.redis_server import RedisServer

LIMITS = KeyLimits(rpm=2)


async def test_fail_closed_raises_limits_unavailable(redis_server: RedisServer) -> None:
    limiter = RedisLimiter(redis_server.url, probe_every=0)
    assert (await limiter.reserve("k", LIMITS, 1, 0.0, time.time())).allowed
    redis_server.stop()
    with pytest.raises(LimitsUnavailable) as raised:
        await limiter.reserve("k", LIMITS, 1, 0.0, time.time())
    assert isinstance(raised.value, Unavailable)
    assert raised.value.status == 503
    assert raised.value.extra == {"retry_after": 1}
    await limiter.close()


async def test_fail_open_serves_and_counts_locally(redis_server: RedisServer) -> None:
    limiter = RedisLimiter(redis_server.url, fail_open=True, probe_every=0)
    redis_server.stop()
    decisions = [await limiter.reserve("k", LIMITS, 1, 0.0, time.time()) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert decisions[0].reservation is not None
    assert decisions[0].reservation.store == "local"
    await limiter.reconcile(decisions[0].reservation, 1, 0.0)
    await limiter.close()


async def test_redis_is_used_again_once_it_answers(redis_server: RedisServer) -> None:
    limiter = RedisLimiter(redis_server.url, fail_open=True, probe_every=0)
    redis_server.stop()
    down = await limiter.reserve("k", LIMITS, 1, 0.0, time.time())
    redis_server.start()
    back = await limiter.reserve("k", LIMITS, 1, 0.0, time.time())
    assert down.reservation is not None and down.reservation.store == "local"
    assert back.reservation is not None and back.reservation.store == "redis"
    await limiter.close()


async def test_an_outage_is_probed_at_most_once_per_interval(redis_server: RedisServer) -> None:
    limiter = RedisLimiter(redis_server.url, probe_every=60)
    redis_server.stop()
    with pytest.raises(LimitsUnavailable):
        await limiter.reserve("k", LIMITS, 1, 0.0, time.time())
    redis_server.start()
    with pytest.raises(LimitsUnavailable):  # not asked again before the interval ends
        await limiter.reserve("k", LIMITS, 1, 0.0, time.time())
    await limiter.close()


async def test_a_reconcile_that_cannot_reach_redis_is_dropped(redis_server: RedisServer) -> None:
    limiter = RedisLimiter(redis_server.url, probe_every=0)
    decision = await limiter.reserve("k", LIMITS, 1, 0.0, time.time())
    assert decision.reservation is not None
    redis_server.stop()
    await limiter.reconcile(decision.reservation, 1, 0.0)  # logged, not raised
    await limiter.close()


async def test_every_redis_key_expires(redis_server: RedisServer) -> None:
    from redis.asyncio import Redis

    limiter = RedisLimiter(redis_server.url, lease_s=900)
    limits = KeyLimits(rpm=5, tpm=100, max_parallel=2, budget=1.0)
    decision = await limiter.reserve("k", limits, 1, 0.1, time.time())
    assert decision.reservation is not None
    client = Redis.from_url(redis_server.url)
    keys = await client.keys("*")
    ttls = [await client.ttl(key) for key in keys]
    await client.aclose()
    await limiter.close()
    assert len(keys) == 4
    assert all(0 < ttl <= 86_400 + 60 for ttl in ttls)


async def test_a_redis_host_that_cannot_be_named_fails_closed_at_once() -> None:
    # A host label over 63 characters cannot be encoded: the connect fails before any
    # socket, and the decisions waiting for it must hear so, not wait forever.
    limiter = RedisLimiter("redis://" + "a" * 64 + ".example:6379/0", probe_every=0)
    with pytest.raises(LimitsUnavailable):
        await asyncio.wait_for(limiter.reserve("k", LIMITS, 1, 0.0, time.time()), 5)
    await limiter.close()


async def test_what_an_outage_served_joins_the_shared_spend_when_redis_answers_again(
    redis_server: RedisServer,
) -> None:
    from redis.asyncio import Redis

    # Counted only in this process's memory, it had never reached the shared budget.
    limiter = RedisLimiter(redis_server.url, fail_open=True, probe_every=0, timeout=0.3)
    limits = KeyLimits(budget=100.0)
    before = await limiter.reserve("k", limits, 1, 1.0, time.time())
    assert before.reservation is not None
    await limiter.reconcile(before.reservation, 1, 1.0)
    await asyncio.sleep(0.1)  # the correction gone
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)  # away, its data kept
    try:
        during = await limiter.reserve("k", limits, 1, 1.0, time.time())
        assert during.reservation is not None and during.reservation.store == "local"
        await limiter.reconcile(during.reservation, 1, 2.0)
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    await asyncio.sleep(1.5)  # past the reconnection
    await limiter.close()
    client = Redis.from_url(redis_server.url)
    spent = await client.hget("hxgw:limits:{k}:st", "s")
    await client.aclose()
    assert spent is not None and float(spent) == pytest.approx(3.0)


async def test_a_reservation_counted_here_while_redis_is_away_is_released_here() -> None:
    # Fail open counts in this process: a reservation another limit refused is taken
    # back where it was made, not asked of the Redis that never saw it.
    limiter = RedisLimiter("redis://127.0.0.1:1/0", fail_open=True, probe_every=0)
    limits = KeyLimits(rpm=1)
    taken_back = (await limiter.reserve("k", limits, 1, 0.0, time.time())).reservation
    assert taken_back is not None and taken_back.store == "local"
    limiter.release(taken_back)
    assert (await limiter.reserve("k", limits, 1, 0.0, time.time())).allowed
    await limiter.close()
