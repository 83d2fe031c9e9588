"""What reaches Redis out of order: a batch the network held up past the release the
gateway's next connection sent for it; a correction for a reservation Redis never saw (it
restarted without its data); a key whose spend another gateway is reading back."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from hxgw.keys.limiter_redis import RedisLimiter
from hxgw.keys.limits import KeyLimits, LimitsUnavailable
from hxgw.keys.redis_batch import _Operation
from hxgw.keys.redis_lines import reserve_line
from hxgw.keys.redis_seed import Spend
from hxgw.keys.resp import RespConnection
from tests.redis_server import RedisServer

NOW = time.time()
"""A spend read back is sent as of the clock's time: this period's."""


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
    late = reserve_line(limits, "late.1", 1, 0.0, NOW)
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


BUDGET = KeyLimits(budget=1.0)


def _ledger(spent: dict[str, float | None]) -> Spend:
    """What the usage ledger says a key spent this period (None: it cannot say)."""

    async def spend(key_name: str, period_s: int) -> float | None:
        return spent[key_name]

    return spend


async def test_the_reservation_that_finds_a_key_new_is_decided_on_the_spend_read_back(
    redis_server: RedisServer,
) -> None:
    limiter = RedisLimiter(redis_server.url, spend=_ledger({"k": 0.8}))
    decision = await limiter.reserve("k", BUDGET, 1, 0.3, NOW)
    await limiter.close()
    # Before, the reservation that found Redis empty went through on a spend of nothing.
    assert decision.refused == "budget"
    assert decision.usage.spent == pytest.approx(0.8)


async def test_another_gateway_waits_for_the_spend_one_reads_back(
    redis_server: RedisServer,
) -> None:
    asked, answer = asyncio.Event(), asyncio.Event()

    async def slow_ledger(key_name: str, period_s: int) -> float:
        asked.set()
        await answer.wait()
        return 0.8

    reading = RedisLimiter(redis_server.url, spend=slow_ledger, timeout=10)
    other = RedisLimiter(redis_server.url, timeout=0.2)
    first = asyncio.create_task(reading.reserve("k", BUDGET, 1, 0.3, NOW))
    await asked.wait()
    # Before, the other gateway's reservations went through on a spend of nothing.
    with pytest.raises(LimitsUnavailable):
        await other.reserve("k", BUDGET, 1, 0.3, NOW + 0.1)
    answer.set()
    assert (await first).refused == "budget"
    assert (await other.reserve("k", BUDGET, 1, 0.3, NOW + 0.2)).refused == "budget"
    await reading.close()
    await other.close()


async def _never(key_name: str, period_s: int) -> float:
    """A ledger that does not answer (a PostgreSQL frozen)."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def test_a_spend_the_ledger_does_not_say_in_time_fails_the_request_closed(
    redis_server: RedisServer,
) -> None:
    limiter = RedisLimiter(redis_server.url, spend=_never, timeout=0.2)
    # Before, it went through on a spend of nothing, and the key's next ones waited 5 s.
    with pytest.raises(LimitsUnavailable):
        await limiter.reserve("k", BUDGET, 1, 0.3, NOW)
    await limiter.close()


async def test_a_spend_the_ledger_does_not_say_in_time_counts_the_request_locally_open(
    redis_server: RedisServer,
) -> None:
    limiter = RedisLimiter(redis_server.url, spend=_never, timeout=0.2, fail_open=True)
    decision = await limiter.reserve("k", BUDGET, 1, 0.3, NOW)
    await limiter.close()
    assert decision.reservation is not None
    assert decision.reservation.store == "local"


async def test_a_gateway_without_a_ledger_does_not_hold_the_others_back(
    redis_server: RedisServer,
) -> None:
    first = RedisLimiter(redis_server.url)
    assert (await first.reserve("k", BUDGET, 1, 0.3, NOW)).allowed
    await first.close()  # what it sends goes
    other = RedisLimiter(redis_server.url, timeout=0.2)
    assert (await other.reserve("k", BUDGET, 1, 0.3, NOW + 0.1)).allowed
    await other.close()


async def test_when_the_gateway_reading_a_spend_back_cannot_another_does_after_the_hold(
    redis_server: RedisServer,
) -> None:
    failing = RedisLimiter(redis_server.url, spend=_ledger({"k": None}), timeout=0.2)
    with pytest.raises(LimitsUnavailable):
        await failing.reserve("k", BUDGET, 1, 0.3, NOW)
    other = RedisLimiter(redis_server.url, spend=_ledger({"k": 0.8}))
    decision = await other.reserve("k", BUDGET, 1, 0.3, NOW + 6)  # the 5 s hold is over
    await failing.close()
    await other.close()
    assert decision.refused == "budget"
    assert decision.usage.spent == pytest.approx(0.8)


async def test_a_correction_that_finds_no_state_leaves_the_spend_to_be_read_back(
    redis_server: RedisServer,
) -> None:
    ledger: dict[str, float | None] = {"k": 0.0, "other": 0.0}
    limiter = RedisLimiter(redis_server.url, spend=_ledger(ledger), probe_every=0)
    decision = await limiter.reserve("k", BUDGET, 1, 0.1, NOW)
    assert decision.reservation is not None
    await _restart(redis_server, limiter)
    ledger["k"] = 0.8
    await limiter.reconcile(decision.reservation, 1, 0.1, NOW + 1)  # the first to find none
    after = await limiter.reserve("k", BUDGET, 1, 0.3, NOW + 2)
    await limiter.close()
    # Before, the correction made the key's state, and no reservation found it new.
    assert after.refused == "budget"
    assert after.usage.spent == pytest.approx(0.8)


async def test_a_tombstone_expires_a_lease_after_it_was_left(redis_server: RedisServer) -> None:
    limiter = RedisLimiter(redis_server.url, lease_s=60)
    limiter._batches.correct("k", f"x {NOW!r} never.1")  # a reservation that never came
    assert (await limiter.reserve("k", KeyLimits(), 0, 0.0, NOW)).allowed  # sent before it
    await limiter.close()
    connection = await RespConnection.open(redis_server.url)
    (ttl,) = connection.send([("TTL", "hxgw:limits:{k}:gone")])
    seconds = await ttl
    connection.close()
    assert isinstance(seconds, int)
    assert 0 < seconds <= 60 + 60


async def test_a_reservation_told_to_read_the_spend_back_whose_request_left_still_reads_it(
    redis_server: RedisServer,
) -> None:
    asked: list[str] = []

    async def ledger(key_name: str, period_s: int) -> float:
        asked.append(key_name)
        return 0.8

    leaving = RedisLimiter(redis_server.url, spend=ledger)
    assert (await leaving.reserve("other", KeyLimits(), 0, 0.0, NOW)).allowed  # the script
    line = reserve_line(BUDGET, "left.1", 1, 0.3, NOW)
    answer = await _late_batch(leaving, redis_server.url, "k", line)
    assert answer.endswith(b" new")
    leaving._abandoned("k", line, answer)  # as the batch does when its caller has left
    other = RedisLimiter(redis_server.url, timeout=3)
    decision = await other.reserve("k", BUDGET, 1, 0.3, NOW + 0.1)
    await leaving.close()
    await other.close()
    # Before, nobody read it back, and every gateway's reservations of the key waited out
    # Redis's hold and failed.
    assert asked == ["k"]
    assert decision.refused == "budget" and decision.usage.spent == pytest.approx(0.8)


async def test_a_gateway_whose_ledger_hangs_takes_the_spend_another_gateway_read_back(
    redis_server: RedisServer,
) -> None:
    hung = RedisLimiter(redis_server.url, spend=_never, timeout=0.2)
    with pytest.raises(LimitsUnavailable):
        await hung.reserve("k", BUDGET, 1, 0.3, NOW)
    other = RedisLimiter(redis_server.url, spend=_ledger({"k": 0.1}))
    assert (await other.reserve("k", BUDGET, 1, 0.3, NOW + 6)).allowed  # the hold is over
    decision = await hung.reserve("k", BUDGET, 1, 0.3, NOW + 7)
    await hung.close()
    await other.close()
    # Before, it waited on its own read alone, and refused the key until that answered.
    assert decision.allowed and decision.usage.spent == pytest.approx(0.1)
