"""Which store a process gets: Redis when named, else the workers' file, else memory."""

from __future__ import annotations

from pathlib import Path

from hxgw.config.schema import LimitsStore
from hxgw.keys import open_limiter
from hxgw.keys.limiter_memory import MemoryLimiter
from hxgw.keys.limiter_redis import RedisLimiter
from hxgw.keys.limiter_shared import SharedLimiter


async def test_one_process_counts_in_memory() -> None:
    limiter = open_limiter(LimitsStore(), {})
    assert isinstance(limiter, MemoryLimiter)
    await limiter.close()


async def test_workers_share_a_file_in_their_scratch_dir(tmp_path: Path) -> None:
    limiter = open_limiter(LimitsStore(), {"HX_WORKERS_DIR": str(tmp_path)}, lease_s=60)
    assert isinstance(limiter, SharedLimiter)
    assert limiter.path.parent == tmp_path and limiter.lease_s == 60
    await limiter.close()


async def test_a_named_store_is_redis_whatever_the_workers(tmp_path: Path) -> None:
    store = LimitsStore(url="redis://127.0.0.1:1/0", fail_open=True)
    limiter = open_limiter(store, {"HX_WORKERS_DIR": str(tmp_path)})
    assert isinstance(limiter, RedisLimiter)
    assert limiter.fail_open
    await limiter.close()
