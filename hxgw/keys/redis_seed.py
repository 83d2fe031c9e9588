"""A key's spend read back from the ledger for Redis, which has no state for the key (new,
idle past its expiry, or lost in a restart without persistence) and would otherwise count
its budget from nothing: read aside, then sent as a seed (`s`) with the next batch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from hxgw.keys.redis_batch import Batches
from hxgw.keys.redis_lines import seed_line

log = structlog.get_logger("hxgw.keys.limits")

Spend = Callable[[str, int], Awaitable[float | None]]
"""A key's name and budget period -> what it spent this period (None: cannot tell)."""
READ_BACK_WITHIN = 5.0
"""The longest a key's spend is waited for from the ledger: Redis holds the key for the
gateway reading it that long (the script's `hold`), then lets the next one read it."""


async def seed(spend: Spend, batches: Batches, key_name: str, period_s: int, now: float) -> None:
    """Read `key_name`'s spend this period and send it. A ledger that does not answer in
    time, or fails, sends nothing: Redis's hold ends, and this or another gateway tries
    again; the key's reservations go the configured way meanwhile."""
    try:
        async with asyncio.timeout(READ_BACK_WITHIN):
            amount = await spend(key_name, period_s)
    except TimeoutError:
        log.warning("the ledger did not say a key's spend in time", key=key_name)
        return
    except Exception:
        log.exception("cannot read a key's spend back for the limits store")
        return
    if amount is not None:
        batches.correct(key_name, seed_line(now, amount, period_s))
