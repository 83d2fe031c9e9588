"""Soak: thousands of streamed requests with random client disconnects; afterwards the
gateway's memory, descriptors and upstream connections are back where they were."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import aiohttp

from tests.fake_upstream import FakeUpstream
from tests.faults.harness import CHAT, CHAT_PATH, Baseline, Outcome, call, check_leaks
from tests.fixtures import wait_for

STREAMS = 3000
CONCURRENCY = 50
POOL = 32
DISCONNECT_SHARE = 0.2
SEED = 20261123


async def test_soak_streams_with_random_disconnects_leave_nothing_behind(
    launch, fake: FakeUpstream, row
):
    gateway, first = await launch(pool=POOL)
    fake.behave("m-alpha", content="w " * 20, chunk_delay=0.002)
    line = row(f"soak: {STREAMS} streams, {CONCURRENCY} concurrent, pool {POOL}, "
               f"{DISCONNECT_SHARE:.0%} clients leave mid-stream")
    rng = random.Random(SEED)
    plan = [rng.randint(1, 15) if rng.random() < DISCONNECT_SHARE else 0 for _ in range(STREAMS)]
    gate = asyncio.Semaphore(CONCURRENCY)
    peak_upstream = 0
    left = 0

    async def one(session: aiohttp.ClientSession, leave_after: int) -> None:
        nonlocal left
        async with gate:
            if not leave_after:
                line.count(await call(session, gateway, stream=True, bound=30))
                return
            try:
                async with asyncio.timeout(30):
                    resp = await session.post(gateway.url + CHAT_PATH, headers=gateway.auth,
                                              json={**CHAT, "stream": True})
                    for _ in range(leave_after):
                        await resp.content.readuntil(b"\n\n")
                    resp.close()
                    left += 1
                    line.count(Outcome("ok"))  # it left as planned; the gateway's part is below
            except TimeoutError:
                line.count(Outcome("hang"))
            except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
                line.count(Outcome("unexpected", detail=f"{type(exc).__name__}: {exc}"))

    async def watch_pool(stop: asyncio.Event) -> None:
        nonlocal peak_upstream
        while not stop.is_set():
            peak_upstream = max(peak_upstream, first.probe.snapshot().upstream_sockets)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)

    async def run(plans: list[int]) -> None:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(one(session, p) for p in plans))

    # Warm up with the same traffic, then take the baseline the soak must come back to.
    await run([0] * 150 + [3] * 50)
    await asyncio.sleep(0.5)
    base = Baseline(first.probe, first.probe.snapshot(), POOL)
    warm, warm_cut = line.requests, len(fake.cancelled) + len(fake.aborted)
    line.requests = line.succeeded = left = 0
    started = time.monotonic()
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_pool(stop))
    await run(plan)
    stop.set()
    await watcher
    took = time.monotonic() - started
    ended = (fake.finished, fake.cancelled, fake.aborted)
    await wait_for(lambda: sum(map(len, ended)) == len(fake.requests), timeout=10)
    snap = await check_leaks(base, line, concurrency=POOL, rss_slack_mb=16, settle=10)
    line.notes.append(
        f"{took:.1f}s ({STREAMS / took:.0f} streams/s) after {warm} warm-up requests; {left} "
        f"left mid-stream, the upstream saw {len(fake.cancelled) + len(fake.aborted) - warm_cut} of its "
        f"requests cut; peak upstream "
        f"sockets {peak_upstream} (pool {POOL}); RSS {base.snapshot.rss_kb // 1024} -> "
        f"{snap.rss_kb // 1024} MB; fds {base.snapshot.fds} -> {snap.fds}")
    # The readiness probe takes no turn under the cap (hxgw.observe.readiness): its one
    # connection may come on top of a full pool.
    if peak_upstream > POOL + 1:
        line.leaks += 1
        line.leak_detail["peak_upstream_sockets"] = peak_upstream
    line.assert_clean()
    assert left == sum(1 for p in plan if p)
