"""What reaches Redis out of order: a batch the network held up past the release the
gateway's next connection sent for it; a correction for a reservation Redis never saw (it
restarted without its data); a key whose spend another gateway is reading back."""

from __future__ import annotations

from hxgw.keys.limiter_redis import RedisLimiter, _reserve_line
from hxgw.keys.limits import KeyLimits
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
