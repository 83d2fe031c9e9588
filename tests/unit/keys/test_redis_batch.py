"""The Redis limiter's batches: decisions asked for together go in one round trip and
are each decided in order; a failed batch fails all its requests the configured way;
corrections are sent without being waited for, and at close."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator

import pytest
import structlog

from hxgw.keys.limiter_redis import RedisLimiter
from hxgw.keys.limits import KeyLimits, LimitsUnavailable
from hxgw.keys.redis_scripts import BATCH
from hxgw.keys.resp import RespConnection
from tests.redis_server import RedisServer

NOW = 1_700_000_000.0


async def _evalsha_calls(url: str) -> int:
    """EVALSHA calls that ran (the first, NOSCRIPT on a fresh server, did not)."""
    connection = await RespConnection.open(url)
    (info,) = connection.send([("INFO", "commandstats")])
    text = await info
    connection.close()
    assert isinstance(text, bytes)
    for line in text.decode().splitlines():
        if line.startswith("cmdstat_evalsha:"):
            stats = dict(item.split("=") for item in line.split(":", 1)[1].split(","))
            return int(stats["calls"]) - int(stats.get("failed_calls", 0))
    return 0


async def test_decisions_asked_together_go_in_one_round_trip(redis_server: RedisServer) -> None:
    limiter = RedisLimiter(redis_server.url)
    decisions = await asyncio.gather(
        *(limiter.reserve("k", KeyLimits(rpm=3), 1, 0.0, NOW + i) for i in range(5))
    )
    await limiter.close()
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.refused for d in decisions[3:]] == ["requests", "requests"]
    assert [d.usage.requests for d in decisions] == [1, 2, 3, 3, 3]
    assert await _evalsha_calls(redis_server.url) == 1


async def test_keys_in_one_batch_are_decided_apart(redis_server: RedisServer) -> None:
    limiter = RedisLimiter(redis_server.url)
    decisions = await asyncio.gather(
        *(limiter.reserve(name, KeyLimits(rpm=1), 1, 0.0, NOW) for name in ("a", "b", "a"))
    )
    await limiter.close()
    assert [d.allowed for d in decisions] == [True, True, False]


async def test_a_correction_is_counted_before_a_later_decision(redis_server: RedisServer) -> None:
    limiter, limits = RedisLimiter(redis_server.url), KeyLimits(max_parallel=1)
    held = await limiter.reserve("k", limits, 1, 0.0, NOW)
    assert held.reservation is not None
    await limiter.reconcile(held.reservation, 1, 0.0, NOW + 1)  # queued, not sent yet
    assert (await limiter.reserve("k", limits, 1, 0.0, NOW + 1)).allowed
    await limiter.close()


async def test_corrections_are_sent_at_close(redis_server: RedisServer) -> None:
    first = RedisLimiter(redis_server.url)
    decision = await first.reserve("k", KeyLimits(budget=1.0), 1, 0.5, NOW)
    assert decision.reservation is not None
    await first.reconcile(decision.reservation, 1, 0.25, NOW + 1)
    await first.close()
    second = RedisLimiter(redis_server.url)
    usage = (await second.reserve("k", KeyLimits(), 0, 0.0, NOW + 2)).usage
    await second.close()
    assert (usage.spent, usage.reserved, usage.parallel) == (0.25, 0.0, 1)  # 1: this one


async def test_corrections_alone_go_within_the_linger(redis_server: RedisServer) -> None:
    limiter = RedisLimiter(redis_server.url)
    decision = await limiter.reserve("k", KeyLimits(budget=1.0), 1, 0.5, NOW)
    assert decision.reservation is not None
    await limiter.reconcile(decision.reservation, 1, 0.25, NOW + 1)
    await asyncio.sleep(0.1)
    other = RedisLimiter(redis_server.url)
    assert (await other.reserve("k", KeyLimits(), 0, 0.0, NOW + 2)).usage.spent == 0.25
    await other.close()
    await limiter.close()


async def test_a_request_that_leaves_as_its_answer_arrives_lets_its_reservation_go(
    redis_server: RedisServer,
) -> None:
    limiter, limits = RedisLimiter(redis_server.url), KeyLimits(max_parallel=1)
    decide = limiter._batches.decide

    def answered_as_it_leaves(key_name: str, line: str) -> asyncio.Future[bytes]:
        # The client goes away in the loop turn that hands out the answer: too late to
        # cancel the answer, before the request has read it.
        answer = decide(key_name, line)
        task = asyncio.current_task()
        assert task is not None
        answer.add_done_callback(lambda _: task.cancel())
        return answer

    limiter._batches.decide = answered_as_it_leaves  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(limiter.reserve("k", limits, 1, 0.0, NOW))
    limiter._batches.decide = decide  # type: ignore[method-assign]
    await asyncio.sleep(0.05)  # the release goes within the linger
    assert (await limiter.reserve("k", limits, 1, 0.0, NOW + 1)).allowed
    await limiter.close()


async def test_corrections_not_yet_sent_when_a_batch_fails_go_with_the_next_connection(
    redis_server: RedisServer,
) -> None:
    limiter, limits = RedisLimiter(redis_server.url, timeout=0.3), KeyLimits(max_parallel=2)
    held = [await limiter.reserve("k", limits, 1, 0.0, time.time()) for _ in range(2)]
    limiter._batches.max_in_flight = 1  # so that the corrections wait behind the batch
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        stalled = asyncio.create_task(limiter.reserve("other", limits, 1, 0.0, time.time()))
        await asyncio.sleep(0.05)  # its batch is out, unanswered
        for decision in held:
            assert decision.reservation is not None
            await limiter.reconcile(decision.reservation, 1, 0.0)  # queued behind it
        with pytest.raises(LimitsUnavailable):
            await stalled  # the batch timed out
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    await asyncio.sleep(1.5)  # past the probe interval and the reconnection
    # Before, the two corrections went with the failed batch: both slots stayed held.
    assert (await limiter.reserve("k", limits, 1, 0.0, time.time())).allowed
    await limiter.close()


@pytest.fixture
async def silent_redis() -> AsyncIterator[str]:
    """A server that accepts connections, reads the commands, and closes the
    connection without answering: Redis lost in the middle of a batch."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    server.close()
    await server.wait_closed()


async def test_a_batch_lost_midway_fails_every_decision_closed(silent_redis: str) -> None:
    limiter = RedisLimiter(silent_redis)
    outcomes = await asyncio.gather(
        *(limiter.reserve("k", KeyLimits(rpm=100), 1, 0.0, time.time()) for _ in range(4)),
        return_exceptions=True,
    )
    await limiter.close()
    assert all(isinstance(outcome, LimitsUnavailable) for outcome in outcomes)


async def test_a_batch_lost_midway_serves_every_decision_locally_open(silent_redis: str) -> None:
    limiter = RedisLimiter(silent_redis, fail_open=True)
    decisions = await asyncio.gather(
        *(limiter.reserve("k", KeyLimits(rpm=3), 1, 0.0, time.time()) for _ in range(4))
    )
    await limiter.close()
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert all(d.reservation.store == "local" for d in decisions if d.reservation is not None)


@pytest.fixture
async def mute_redis() -> AsyncIterator[str]:
    """A server that accepts connections and never answers: Redis stalled."""
    writers: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    yield f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_batch_without_an_answer_fails_within_the_timeout(mute_redis: str) -> None:
    limiter = RedisLimiter(mute_redis, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(LimitsUnavailable):
        await limiter.reserve("k", KeyLimits(rpm=1), 1, 0.0, time.time())
    assert time.monotonic() - started < 1.0
    await limiter.close()


async def test_a_redis_that_does_not_answer_is_logged_as_saying_nothing_in_time(
    mute_redis: str,
) -> None:
    limiter = RedisLimiter(mute_redis, timeout=0.2)
    with structlog.testing.capture_logs() as logs, pytest.raises(LimitsUnavailable):
        await limiter.reserve("k", KeyLimits(rpm=1), 1, 0.0, time.time())
    await limiter.close()
    (line,) = [e for e in logs if e["event"] == "limits_store_unreachable"]
    assert line["error"] == "TimeoutError: no answer within 0.2 s"  # it was "TimeoutError: "


async def test_a_server_that_lost_the_script_gets_it_again(redis_server: RedisServer) -> None:
    limiter = RedisLimiter(redis_server.url)
    assert (await limiter.reserve("k", KeyLimits(rpm=2), 1, 0.0, NOW)).allowed
    flush = await RespConnection.open(redis_server.url)
    await flush.send([("SCRIPT", "FLUSH")])[0]
    flush.close()
    decisions = await asyncio.gather(
        *(limiter.reserve(name, KeyLimits(rpm=2), 1, 0.0, NOW + 1) for name in ("k", "k", "j"))
    )
    await limiter.close()
    assert [d.allowed for d in decisions] == [True, False, True]


async def test_a_release_sent_alone_after_a_failed_batch_keeps_the_budget_for_its_period(
    redis_server: RedisServer,
) -> None:
    from redis.asyncio import Redis

    # The releases of a failed batch often go alone on the next connection: that call
    # gave the key's state a window's life, and a key idle 16 minutes lost its spend.
    limiter, limits = RedisLimiter(redis_server.url, timeout=0.3), KeyLimits(budget=10.0)
    spent = await limiter.reserve("k", limits, 10, 6.0, time.time())
    assert spent.reservation is not None
    await limiter.reconcile(spent.reservation, 10, 6.0)
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(LimitsUnavailable):
            await limiter.reserve("k", limits, 10, 1.0, time.time())  # released when back
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    await asyncio.sleep(1.5)  # past the probe interval and the reconnection
    await limiter.close()  # the release has gone
    client = Redis.from_url(redis_server.url)
    ttl = await client.ttl("hxgw:limits:{k}:st")
    await client.aclose()
    assert ttl > 86_400


async def test_a_correction_a_paused_redis_dropped_is_sent_again_and_frees_its_slot(
    redis_server: RedisServer,
) -> None:
    # A failover pauses writes; the gateway gives up on the batch and closes its
    # connection, and Redis drops the commands it had: the slot was held for the lease.
    limiter, limits = RedisLimiter(redis_server.url, timeout=0.3), KeyLimits(max_parallel=1)
    held = await limiter.reserve("k", limits, 1, 0.0, time.time())
    assert held.reservation is not None
    pause = await RespConnection.open(redis_server.url)
    await pause.send([("CLIENT", "PAUSE", "1000", "WRITE")])[0]
    pause.close()
    await limiter.reconcile(held.reservation, 1, 0.0)
    await asyncio.sleep(2.5)  # the pause over, the correction sent again
    again = await limiter.reserve("k", limits, 1, 0.0, time.time())
    await limiter.close()
    assert again.allowed, again.refused


_KEYS = [f"hxgw:limits:{{k}}:{part}" for part in ("log", "tok", "open", "st", "gone")]


async def _run_script(server: RedisServer, *calls: list[str]) -> float:
    """Each call's operations in one script call of key `k` (sent now, a lease of 900 s);
    the key's spend after them."""
    client = await RespConnection.open(server.url)
    try:
        for ops in calls:
            header = ("60", "1", "900", repr(time.time()))
            await client.send([("EVAL", BATCH, len(_KEYS), *_KEYS, *header, *ops)])[0]
        spent = await client.send([("HGET", "hxgw:limits:{k}:st", "s")])[0]
    finally:
        client.close()
    assert isinstance(spent, bytes)
    return float(spent)


async def test_a_correction_sent_again_after_it_ran_charges_nothing_twice(
    redis_server: RedisServer,
) -> None:
    from hxgw.keys.redis_lines import correction_line

    now = time.time()
    limiter, limits = RedisLimiter(redis_server.url), KeyLimits(budget=1.0)
    made = await limiter.reserve("k", limits, 1, 0.4, now)
    assert made.reservation is not None
    await limiter.close()  # what it had waiting (the key's first spend) gone before these
    line = correction_line(made.reservation, now + 1, 1, 0.7)
    assert await _run_script(redis_server, [line], ["C" + line[1:]]) == pytest.approx(0.7)


def _served(rid: str, at: float, cost: float) -> str:
    """The `a` of a request served while Redis was away, reconciled at `at`."""
    from hxgw.keys.limits import Reservation
    from hxgw.keys.redis_lines import spent_line

    return spent_line(Reservation("k", rid, 1, cost, 86_400, "local", at), at, cost)


async def test_a_spend_from_an_outage_sent_again_is_added_once(redis_server: RedisServer) -> None:
    line = _served("local-1", time.time(), 2.0)
    assert await _run_script(redis_server, [line], [line]) == pytest.approx(2.0)


async def test_a_spend_from_an_outage_longer_than_the_lease_is_added_once_too(
    redis_server: RedisServer,
) -> None:
    # Its tombstone had been dated by the spend, a lease ago: a newer operation of the
    # same call buried it, and each sending after a failed batch added it again.
    now = time.time()
    old, new = _served("local-1", now - 1200, 1.0), _served("local-2", now, 2.0)
    spent = await _run_script(redis_server, [old, new], [old, new], [old, new])
    assert spent == pytest.approx(2.0 + (1.0 if int((now - 1200) // 86_400) == int(now // 86_400)
                                         else 0.0))


async def test_a_correction_dated_periods_back_leaves_the_spend_of_the_period_under_way(
    redis_server: RedisServer,
) -> None:
    # Kept through a long outage, its date set the period back and the spend to nothing.
    now = time.time()
    today = _served("local-1", now, 5.0)
    assert await _run_script(redis_server, [today], [_served("local-2", now - 3 * 86_400, 1.0)]
                             ) == pytest.approx(5.0)
