"""One process of a cross-process limiter test: it opens the store, says "ready",
waits for "go" on stdin, makes its reservations at once and prints what passed.

    python -m tests.unit.keys.limits_client shared|redis <dir or url> <count> <limits json>
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from hxgw.keys.limiter_redis import RedisLimiter
from hxgw.keys.limiter_shared import SharedLimiter
from hxgw.keys.limits import KeyLimits, Limiter


async def main(backend: str, where: str, count: int, limits: KeyLimits, cost: float) -> None:
    limiter: Limiter = SharedLimiter(Path(where)) if backend == "shared" else RedisLimiter(where)
    await limiter.reserve("warm-up", KeyLimits(), 0, 0.0, time.time())  # connect first
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    decisions = await asyncio.gather(
        *(limiter.reserve("k", limits, 1, cost, time.time()) for _ in range(count))
    )
    admitted = [d.reservation for d in decisions if d.reservation is not None]
    await asyncio.gather(*(limiter.reconcile(r, 1, cost) for r in admitted))
    await limiter.close()
    print(json.dumps({"allowed": len(admitted)}), flush=True)


if __name__ == "__main__":
    backend, where, count, raw, cost = sys.argv[1:6]
    asyncio.run(main(backend, where, int(count), KeyLimits(**json.loads(raw)), float(cost)))
