"""What a per-key limit costs: microseconds per reserve + reconcile, for each store.

    .venv/bin/python bench/limits.py [--decisions 3000] [--redis-url redis://...]

Without --redis-url a redis-server is started on a free loopback port (Debian's
`redis-server` must be installed). One key with every limit set; the clock is
advanced so that the window holds `--in-window` requests, the steady state of a
key used at that rate (the shared file's cost grows with it: it reads and writes
the key's window).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hxgw.keys.limiter_memory import MemoryLimiter
from hxgw.keys.limiter_redis import RedisLimiter
from hxgw.keys.limiter_shared import SharedLimiter
from hxgw.keys.limits import WINDOW, KeyLimits, LimitDecision, Limiter, Reservation


async def per_decision(limiter: Limiter, decisions: int, in_window: int) -> float:
    limits = KeyLimits(rpm=10 * in_window, tpm=10**9, max_parallel=100, budget=10.0**9)
    step = WINDOW / in_window
    now = time.time()
    for i in range(200):  # warm up: fill the window, load the script, open the file
        await _one(limiter, limits, now + i * step)
    start = time.perf_counter()
    for i in range(200, 200 + decisions):
        await _one(limiter, limits, now + i * step)
    return (time.perf_counter() - start) / decisions * 1e6


async def _one(limiter: Limiter, limits: KeyLimits, now: float) -> None:
    decision = await limiter.reserve("bench", limits, 100, 0.001, now)
    assert decision.reservation is not None, decision.refused
    await limiter.reconcile(decision.reservation, 80, 0.0008, now)


class _Inline:
    """The shared file without its thread: what the hop to the thread costs."""

    def __init__(self, limiter: SharedLimiter) -> None:
        self.limiter = limiter

    async def reserve(
        self, key_name: str, limits: KeyLimits, est_tokens: int, est_cost: float, now: float
    ) -> LimitDecision:
        return self.limiter.reserve_now(key_name, limits, est_tokens, est_cost, now)

    async def reconcile(
        self, reservation: Reservation, actual_tokens: int, actual_cost: float,
        now: float | None = None,
    ) -> None:
        when = time.time() if now is None else now
        self.limiter.reconcile_now(reservation, actual_tokens, actual_cost, when)

    async def close(self) -> None:
        await self.limiter.close()


def _subdir(parent: str, name: str) -> Path:
    path = Path(parent) / name
    path.mkdir()
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--decisions", type=int, default=3000)
    parser.add_argument("--in-window", type=int, default=100)
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hxgw-bench-limits-") as scratch:
        server, url = None, args.redis_url
        if url is None:
            port = _free_port()
            binary = shutil.which("redis-server") or "redis-server"
            server = subprocess.Popen(  # noqa: S603 -- our own arguments
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", scratch],
                stdout=subprocess.DEVNULL,
            )
            url = f"redis://127.0.0.1:{port}/0"
            time.sleep(0.3)
        try:
            asyncio.run(run_all(scratch, url, args.decisions, args.in_window))
        finally:
            if server is not None:
                server.terminate()
                server.wait()


async def run_all(scratch: str, url: str, decisions: int, in_window: int) -> None:
    makers: dict[str, Callable[[], Limiter]] = {
        "memory": MemoryLimiter,
        "shared (SQLite, thread)": lambda: SharedLimiter(_subdir(scratch, "thread")),
        "shared (SQLite, inline)": lambda: _Inline(SharedLimiter(_subdir(scratch, "inline"))),
        "redis (loopback)": lambda: RedisLimiter(url),
    }
    print(f"µs per reserve + reconcile, {in_window} requests in the window, "
          f"{decisions} decisions")
    for name, make in makers.items():
        limiter = make()
        micros = await per_decision(limiter, decisions, in_window)
        await limiter.close()
        print(f"  {name:26} {micros:8.1f}")


if __name__ == "__main__":
    main()
