"""Client faults: leaving early, reading slowly, trickling headers, oversized bodies,
thousands of idle connections.

For a client that leaves, "succeeded" in the table means the gateway did what it must:
the upstream request was cancelled within a second or two. An upstream request still
running after the bound counts as a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import resource
import time

import aiohttp
import pytest

from tests.fake_upstream import FakeUpstream
from tests.faults.harness import (
    CHAT,
    CHAT_PATH,
    MODES,
    Outcome,
    PeakRss,
    call,
    check_leaks,
    raw_exchange,
    statuses,
)
from tests.fixtures import Gateway, wait_for

N = 10


def _request(gateway: Gateway, body: dict, *, extra: str = "") -> bytes:
    data = json.dumps(body).encode()
    return (f"POST {CHAT_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gateway.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n{extra}\r\n"
            ).encode() + data


async def _count_cancelled(row, fake: FakeUpstream, n: int, bound: float = 5.0) -> float:
    """Count into `row` how many of the upstream's `n` requests were cancelled in time."""
    started = time.monotonic()
    with contextlib.suppress(AssertionError):
        await wait_for(lambda: len(fake.cancelled) >= n, timeout=bound)
    took = time.monotonic() - started
    for i in range(n):
        row.count(Outcome("ok" if i < len(fake.cancelled) else "hang",
                          detail="upstream request still running"))
    return took


@pytest.mark.parametrize("mode", MODES)
async def test_clients_leaving_before_the_upstream_headers_cancel_the_upstream(
    launch, fake: FakeUpstream, row, mode: str
):
    gateway, base = await launch(timeouts={"first_byte": 60})
    fake.behave("m-alpha", header_delay=60)
    line = row("client leaves before upstream headers", mode)
    body = {**CHAT, "stream": mode == "stream"}
    writers = []
    for _ in range(N):
        _, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(_request(gateway, body))
        writers.append(writer)
    await wait_for(lambda: len(fake.requests) == N, timeout=5)
    for writer in writers:
        writer.close()
    took = await _count_cancelled(line, fake, N)
    line.notes.append(f"all upstream requests cancelled {took:.2f}s after the clients left")
    await check_leaks(base, line, concurrency=N)
    line.assert_clean()
    assert took < 2


@pytest.mark.parametrize("mode", MODES)
async def test_clients_leaving_mid_response_cancel_the_upstream(
    launch, fake: FakeUpstream, row, mode: str
):
    gateway, base = await launch()
    rng = random.Random(7)
    if mode == "stream":
        fake.behave("m-alpha", content="w " * 200, chunk_delay=0.02)
    else:
        fake.behave("m-alpha", hang_mid_body=True)
    line = row("client leaves mid-response", mode)

    async def leave_early(session: aiohttp.ClientSession) -> None:
        resp = await session.post(gateway.url + CHAT_PATH, headers=gateway.auth,
                                  json={**CHAT, "stream": mode == "stream"})
        if mode == "stream":
            for _ in range(rng.randint(1, 5)):
                await resp.content.readuntil(b"\n\n")
        else:
            await resp.content.readany()
        resp.close()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(leave_early(session) for _ in range(N)))
    took = await _count_cancelled(line, fake, N)
    line.notes.append(f"upstream cancelled within {took:.2f}s")
    await check_leaks(base, line, concurrency=N)
    line.assert_clean()


@pytest.mark.parametrize("mode", MODES)
async def test_a_slow_reader_pauses_the_upstream_and_keeps_memory_bounded(
    launch, fake: FakeUpstream, row, mode: str
):
    """The client reads 1 KB/s from a 500 MB response: backpressure must reach the
    upstream (its writes stop) and the gateway must not buffer the difference."""
    gateway, base = await launch(timeouts={"idle": 30})
    size = 500_000_000
    if mode == "stream":
        fake.behave("m-alpha", stream_bytes=size)
    else:
        fake.behave("m-alpha", body_bytes=size)
    line = row("slow reader (1 KB/s of a 500 MB response)", mode)
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port, limit=1024)
    writer.write(_request(gateway, {**CHAT, "stream": mode == "stream"}))
    samples: list[int] = []
    async with PeakRss(base.probe) as peak:
        for second in range(6):
            await reader.read(1024)
            if second in (2, 5):
                samples.append(fake.progress.get("m-alpha", 0))
            await asyncio.sleep(1)
    writer.close()
    paused = samples[1] - samples[0] < 1_000_000 and samples[1] < 100_000_000
    line.count(Outcome("ok" if paused else "unexpected",
                       detail=f"upstream progress {samples} bytes: not paused"))
    line.notes.append(f"upstream wrote {samples[1] / 1e6:.1f} MB, then paused")
    line.bound_peak(peak, 16)
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


async def test_slowloris_headers_do_not_block_others_and_are_cut(launch, row):
    """20 clients trickle header bytes forever; others are served meanwhile, and the
    trickling connections are closed once `limits.client_idle_timeout` (2 s) passes."""
    gateway, base = await launch(limits={"client_idle_timeout": 2})
    line = row("slowloris: 20 clients trickle headers, 1 byte / 100 ms")
    cut_after: list[float] = []

    async def trickle() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        started = time.monotonic()
        closed = asyncio.ensure_future(reader.read())
        head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 300
        try:
            for byte in head:
                if closed.done():
                    break
                writer.write(bytes([byte]))
                await asyncio.sleep(0.1)
        except (ConnectionError, OSError):
            pass
        cut_after.append(time.monotonic() - started)
        closed.cancel()
        writer.close()

    slow = [asyncio.create_task(trickle()) for _ in range(20)]
    await asyncio.sleep(0.5)
    latencies = []
    async with aiohttp.ClientSession() as session:
        for i in range(20):
            started = time.monotonic()
            line.count(await call(session, gateway, stream=bool(i % 2)))
            latencies.append(time.monotonic() - started)
    await asyncio.wait_for(asyncio.gather(*slow), timeout=30)
    for took in cut_after:
        line.count(Outcome("clean" if took < 2 + 2.5 else "hang",
                           detail=f"trickling client still connected after {took:.1f}s"))
    line.notes.append(f"normal requests max {max(latencies) * 1000:.0f} ms; slow clients cut "
                      f"after {min(cut_after):.1f}-{max(cut_after):.1f} s")
    assert max(latencies) < 1.0
    await check_leaks(base, line, concurrency=1)
    line.assert_clean(expect="any")


async def test_a_client_stalling_mid_body_is_cut(launch, fake: FakeUpstream, row):
    gateway, base = await launch(limits={"client_idle_timeout": 2})
    line = row("client stalls mid-body (slow POST)", expect="clean")
    data = json.dumps(CHAT).encode()
    head = (f"POST {CHAT_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gateway.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
    stalled = []
    for _ in range(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(head + data[:5])
        stalled.append((reader, writer))
    started = time.monotonic()
    for reader, writer in stalled:
        try:
            left = max(0.1, started + 2 + 4 - time.monotonic())
            answer = await asyncio.wait_for(reader.read(), timeout=left)
            line.count(Outcome("clean", detail=answer[:60].decode("latin-1")))
        except TimeoutError:
            line.count(Outcome("hang", detail="still waiting for the body"))
        except (ConnectionError, OSError):
            line.count(Outcome("clean"))
        writer.close()
    assert fake.requests == []
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


async def test_bodies_over_the_limit(launch, fake: FakeUpstream, row):
    """Declared, chunked, behind Expect: 100-continue, plain: each gets 413, and a request
    hidden in the part of the body the gateway did not read is never read as a request."""
    limit = 1_000_000
    gateway, base = await launch(limits={"max_body_bytes": limit})
    line = row("bodies over the limit (4 ways)", expect="clean")
    smuggled = _request(gateway, {"messages": [{"role": "user", "content": "SMUGGLED"}]})
    pad = b'{"messages": [{"role": "user", "content": "' + b"x" * (limit + 10) + b'"}]}'
    head = (f"POST {CHAT_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gateway.key}\r\n"
            "Content-Type: application/json\r\n")

    declared = (head + f"Content-Length: {len(pad) + len(smuggled)}\r\n\r\n").encode()
    answers = [await raw_exchange(gateway.port, declared + pad + smuggled, timeout=5)]
    chunked = (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
    inner = pad + smuggled
    body = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n"
                    for p in (inner[i:i + 65536] for i in range(0, len(inner), 65536)))
    answers.append(await raw_exchange(gateway.port, chunked + body + b"0\r\n\r\n",
                                      timeout=5))
    expect = (head + f"Content-Length: {100 * limit}\r\nExpect: 100-continue\r\n\r\n").encode()
    answers.append(await raw_exchange(gateway.port, expect, timeout=5))
    async with aiohttp.ClientSession() as session, session.post(
            gateway.url + CHAT_PATH, data=io.BytesIO(pad), headers=gateway.auth) as resp:
        answers.append(f"HTTP/1.1 {resp.status} x\r\n".encode() + await resp.read())
    for answer in answers:
        codes = [c for c in statuses(answer) if c != 100]
        line.count(Outcome("clean" if codes == [413] else "unexpected",
                           detail=f"statuses {statuses(answer)}: {answer[:200]!r}"))
    assert not any("SMUGGLED" in json.dumps(r.body, default=str) for r in fake.requests)
    assert fake.requests == []
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


async def test_many_uploads_over_the_limit_keep_memory_bounded(launch, fake: FakeUpstream, row):
    gateway, base = await launch(limits={"max_body_bytes": 1_000_000})
    line = row("10 concurrent 20 MB uploads, 1 MB limit", expect="clean")
    block = b"x" * 65536

    async def upload(session: aiohttp.ClientSession) -> None:
        async def chunks():
            for _ in range(20_000_000 // len(block)):
                yield block

        try:
            async with session.post(gateway.url + CHAT_PATH, data=chunks(),
                                    headers=gateway.auth) as resp:
                line.count(Outcome("clean" if resp.status == 413 else "unexpected",
                                   detail=f"HTTP {resp.status}"))
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
            # The gateway may close the connection while the client is still sending.
            line.count(Outcome("clean"))

    async with PeakRss(base.probe) as peak, aiohttp.ClientSession() as session:
        await asyncio.wait_for(asyncio.gather(*(upload(session) for _ in range(10))), 30)
    line.bound_peak(peak, 32)
    assert fake.requests == []
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


async def test_two_thousand_idle_keepalive_connections_do_not_starve_requests(
    launch, fake: FakeUpstream, row
):
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft >= 4500, f"RLIMIT_NOFILE is {soft}: 2,000 connections need ~4,100 descriptors"
    gateway, base = await launch()
    line = row("2,000 idle keep-alive connections + 40 requests")
    idle: list[asyncio.StreamWriter] = []
    try:
        for _ in range(20):
            pairs = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", gateway.port)
                                           for _ in range(100)))
            for _, writer in pairs:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            heads = await asyncio.gather(*(r.readuntil(b"\r\n\r\n") for r, _ in pairs))
            for head, (_, writer) in zip(heads, pairs, strict=True):
                line.count(Outcome("ok" if head.startswith(b"HTTP/1.1 200") else "unexpected",
                                   detail=head[:40].decode("latin-1")))
                idle.append(writer)
        held = base.probe.snapshot()
        assert held.client_sockets >= 2000, held
        latencies = []
        async with aiohttp.ClientSession() as session:
            for i in range(40):
                started = time.monotonic()
                line.count(await call(session, gateway, stream=bool(i % 2)))
                latencies.append(time.monotonic() - started)
        line.notes.append(f"gateway held {held.fds} fds; requests max "
                          f"{max(latencies) * 1000:.0f} ms")
        assert max(latencies) < 1.0
    finally:
        for writer in idle:
            writer.close()
    await check_leaks(base, line, concurrency=1, settle=10)
    line.assert_clean()
