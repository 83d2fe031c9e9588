"""A request's reservations taken back when it goes nowhere: made against its end user's
limits, then left while the key's own were being decided."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp.test_utils import make_mocked_request

from hxgw.config import ClientKey, KeyLimits
from hxgw.endpoints import CHAT
from hxgw.keys.limiter_redis import RedisLimiter
from hxgw.keys.per_user import user_name
from hxgw.pipeline.context import RequestContext
from hxgw.pipeline.exchange import Exchange
from hxgw.pipeline.limits import apply_limits
from hxgw.runtime import Runtime
from tests.redis_server import RedisServer, redis_server  # noqa: F401 -- a fixture
from tests.unit.pipeline.offline import offline_state

ONE_AT_ONCE = KeyLimits(max_parallel=1)


async def _never_reached(ctx: RequestContext) -> None:
    raise AssertionError("the request went on")


async def test_a_client_that_leaves_while_the_key_s_limit_decides_frees_its_end_user_s_slot(
    tmp_path: Path, redis_server: RedisServer,  # noqa: F811
):
    # Redis has no state for the key's budget: its reservation waits for the key's spend
    # from a ledger that does not answer, and the client leaves meanwhile.
    asked = asyncio.Event()

    async def frozen_ledger(key_name: str, period_s: int) -> float:
        asked.set()
        await asyncio.Event().wait()
        return 0.0

    limiter = RedisLimiter(redis_server.url, spend=frozen_ledger)
    state = offline_state(tmp_path, runtime=Runtime(limiter=limiter))
    ctx = RequestContext(Exchange(make_mocked_request("POST", "/v1/chat/completions")),
                         state, CHAT)
    ctx.key = ClientKey(name="k", digest=bytes(32), limits=KeyLimits(budget=1.0),
                        per_user=ONE_AT_ONCE)
    ctx.body = {"model": "chat", "messages": [], "user": "ann"}
    ctx.raw_body = b"{}"
    request = asyncio.get_running_loop().create_task(apply_limits(ctx, _never_reached))
    await asked.wait()
    request.cancel()
    await asyncio.gather(request, return_exceptions=True)
    after = await limiter.reserve(user_name("k", "ann"), ONE_AT_ONCE, 1, 0.0, time.time())
    await limiter.close()
    assert after.allowed
