"""Which limiter a process uses: Redis when a store is named, else the workers' shared
file when there are workers, else this process's memory."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hxgw.config.limits_store import without_password
from hxgw.config.schema import LimitsStore
from hxgw.keys.limiter_memory import DEFAULT_LEASE, NO_SPEND, MemoryLimiter
from hxgw.keys.limiter_redis import RedisLimiter
from hxgw.keys.limiter_shared import SharedLimiter
from hxgw.keys.limits import Limiter
from hxgw.keys.redis_seed import Spend
from hxgw.keys.window import Spent
from hxgw.observe.workers import SHARED_DIR


def open_limiter(
    store: LimitsStore,
    env: Mapping[str, str],
    *,
    lease_s: float = DEFAULT_LEASE,
    spent: Spent = NO_SPEND,
    spend: Spend | None = None,
) -> Limiter:
    """The limiter for this process. `lease_s` should outlast the longest request (the
    total timeout): a reservation not reconciled by then gives its slot back. `spent`
    (from the ledger) starts the keys' budgets where they were; Redis keeps its own, and
    asks `spend` (the ledger) for a key's when it has lost it."""
    if store.url is not None:
        return RedisLimiter(
            store.url,
            fail_open=store.fail_open,
            lease_s=lease_s,
            timeout=store.timeout,
            spend=spend,
        )
    shared = env.get(SHARED_DIR)
    if shared:
        return SharedLimiter(Path(shared), lease_s=lease_s, spent=spent)
    return MemoryLimiter(lease_s=lease_s, spent=spent)


async def probe_limiter(limiter: Limiter) -> None:
    """At the start: whether a shared store answers, said in the log and the metrics
    (memory and the shared file always do)."""
    if isinstance(limiter, RedisLimiter):
        await limiter.probe()


def limits_where(store: LimitsStore, env: Mapping[str, str]) -> str:
    """Where `open_limiter` keeps the limits, as the start's log line says it (no password)."""
    if store.url is not None:
        mode = "counting locally" if store.fail_open else "503"
        return (
            f"{without_password(store.url)} (if unreachable: {mode}; timeout {store.timeout:g} s)"
        )
    if env.get(SHARED_DIR):
        return "the workers' shared file"
    return "memory"
