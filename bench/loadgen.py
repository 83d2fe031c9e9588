"""Load generators: wrk (with a Lua script) for request/response cases, and small
asyncio clients where no tool fits: streamed time to first byte, per-chunk
delay, and 1,000 concurrent slow streams.

Every SSE chunk of bench/upstream.py carries the upstream's `time.monotonic()`
at the moment it was written (`"t":...`). CLOCK_MONOTONIC is one clock for the
whole machine, so `arrival - t` is the chunk's one-way delay from the upstream
to the client, through whatever proxy is in between.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from procs import preexec

LUA = """\
local f = assert(io.open("{body}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH-RESULT %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.1f %.1f %.1f %.1f %.1f %.1f %.1f\\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.stdev))
end
"""
FIELDS = [
    "requests",
    "duration_us",
    "bytes",
    "err_connect",
    "err_read",
    "err_write",
    "non_2xx",
    "err_timeout",
    "mean_us",
    "max_us",
    "p50_us",
    "p90_us",
    "p99_us",
    "p999_us",
    "stdev_us",
]


def write_lua(workdir: Path, name: str, body: bytes, key: str) -> Path:
    body_path = workdir / f"{name}.body.json"
    body_path.write_bytes(body)
    script = workdir / f"{name}.lua"
    script.write_text(LUA.format(body=body_path, key=key))
    script.chmod(0o600)
    return script


def wrk(url: str, script: Path, connections: int, seconds: int, core: int | None) -> dict[str, Any]:
    """One wrk run (1 thread: it has one core); returns the done() hook's figures."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    argv += ["--latency", "-s", str(script), url]
    done = subprocess.run(  # noqa: S603 - fixed argv
        argv,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        start_new_session=True,
        preexec_fn=preexec(core, os.getpid()),
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            values = [float(v) for v in line.split()[1:]]
            result: dict[str, Any] = dict(zip(FIELDS, values, strict=True))
            break
    else:
        raise RuntimeError(
            f"wrk gave no result (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    seconds_run = result["duration_us"] / 1e6
    errors = sum(result[k] for k in ("err_connect", "err_read", "err_write", "err_timeout"))
    return {
        "connections": connections,
        "seconds": round(seconds_run, 3),
        "requests": int(result["requests"]),
        "rps": result["requests"] / seconds_run,
        "p50_ms": result["p50_us"] / 1000,
        "p90_ms": result["p90_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "p999_ms": result["p999_us"] / 1000,
        "mean_ms": result["mean_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        "errors": int(errors),
        "non_2xx": int(result["non_2xx"]),
        "bytes_read": int(result["bytes"]),
    }


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@dataclass
class StreamStats:
    ttfb: list[float] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    held_back: int = 0
    late: int = 0
    ok: int = 0
    failed: int = 0
    chunks: int = 0
    errors: list[str] = field(default_factory=list)


async def one_stream(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: bytes,
    expected_chunks: int,
    stats: StreamStats,
    interval: float = 0.0,
) -> None:
    """One streamed request: time to first body byte, and each chunk's one-way delay.

    A chunk that arrives later than one interval after the upstream wrote it (so
    after the next one was written) was held back somewhere, or the reader was
    late: counted in `late`. Events that arrive in the same read as an earlier one
    are counted in `held_back` (coalesced)."""
    started = time.monotonic()
    first = None
    last = None
    pending = b""
    got = 0
    try:
        async with session.post(url, data=body, headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"status {response.status}")
            async for data in response.content.iter_any():
                now = time.monotonic()
                if first is None:
                    first = now - started
                lines = (pending + data).split(b"\n")
                pending = lines.pop()
                in_this_read = 0
                for line in lines:
                    at = line.rfind(b',"t":')
                    if line.startswith(b"data: {") and at > 0:
                        delay = now - float(line[at + 5 : line.index(b"}", at)])
                        stats.delays.append(delay)
                        if interval and delay > interval:
                            stats.late += 1
                        in_this_read += 1
                got += in_this_read
                if in_this_read:
                    if last is not None:
                        stats.gaps.append(now - last)
                    last = now
                    stats.held_back += in_this_read - 1
        if got != expected_chunks:
            raise RuntimeError(f"{got} of {expected_chunks} chunks")
    except (aiohttp.ClientError, OSError, RuntimeError, TimeoutError) as exc:
        stats.failed += 1
        if len(stats.errors) < 5:
            stats.errors.append(f"{type(exc).__name__}: {exc}")
        return
    stats.ok += 1
    stats.chunks += got
    if first is not None:
        stats.ttfb.append(first)


def _session(limit: int, timeout: float) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout), auto_decompress=False
    )


async def stream_run(
    url: str,
    headers: dict[str, str],
    body: bytes,
    chunks: int,
    interval: float,
    streams: int,
    concurrency: int,
    stats: StreamStats | None = None,
) -> dict[str, Any]:
    """`streams` streamed requests, `concurrency` at a time, each worker one after another.
    Pass `stats` to pool several runs: each adds its samples to it."""
    stats = StreamStats() if stats is None else stats
    async with _session(concurrency, 60) as session:
        queue = iter(range(streams))

        async def worker() -> None:
            for _ in queue:
                await one_stream(session, url, headers, body, chunks, stats, interval)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summarize_streams(stats)


def summarize_streams(stats: StreamStats) -> dict[str, Any]:
    ms = 1000.0
    return {
        "streams_ok": stats.ok,
        "streams_failed": stats.failed,
        "chunks": stats.chunks,
        "ttfb_p50_ms": percentile(stats.ttfb, 0.5) * ms,
        "ttfb_p99_ms": percentile(stats.ttfb, 0.99) * ms,
        "ttfb_max_ms": max(stats.ttfb, default=float("nan")) * ms,
        "chunk_delay_p50_ms": percentile(stats.delays, 0.5) * ms,
        "chunk_delay_p99_ms": percentile(stats.delays, 0.99) * ms,
        "chunk_delay_max_ms": max(stats.delays, default=float("nan")) * ms,
        "gap_mean_ms": statistics.fmean(stats.gaps) * ms if stats.gaps else float("nan"),
        "held_back": stats.held_back,
        "late_chunks": stats.late,
        "errors": stats.errors,
    }


async def slow_streams(
    url: str,
    headers: dict[str, str],
    body: bytes,
    chunks: int,
    interval: float,
    streams: int,
    ramp: float,
    cpu_seconds: Callable[[], float],
    rss_kb: Callable[[], int],
    request_timeout: float,
) -> dict[str, Any]:
    """`streams` slow streams, started evenly over `ramp` seconds, all open together;
    the proxy's RSS and CPU sampled every 0.1 s while they run. Steady-state CPU is
    taken between the end of the ramp and the end of the first streams."""
    stats = StreamStats()
    samples: list[tuple[float, float, int]] = []
    idle_rss = rss_kb()
    started = time.monotonic()
    cpu_before = cpu_seconds()

    async def sample() -> None:
        while True:
            samples.append((time.monotonic() - started, cpu_seconds(), rss_kb()))
            await asyncio.sleep(0.1)

    async def delayed(i: int, session: aiohttp.ClientSession) -> None:
        await asyncio.sleep(ramp * i / streams)
        await one_stream(session, url, headers, body, chunks, stats)

    sampler = asyncio.create_task(sample())
    try:
        async with _session(0, request_timeout) as session:
            await asyncio.gather(*(delayed(i, session) for i in range(streams)))
    finally:
        sampler.cancel()
    wall = time.monotonic() - started
    cpu = cpu_seconds() - cpu_before
    steady = [s for s in samples if ramp + 0.5 <= s[0] <= (chunks - 1) * interval - 0.2]
    steady_cpu = (
        100 * (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0])
        if len(steady) > 2
        else float("nan")
    )
    summary = summarize_streams(stats)
    summary.pop("held_back")
    summary.pop("late_chunks")
    return {
        **summary,
        "streams": streams,
        "ramp_s": ramp,
        "seconds": round(wall, 2),
        "idle_rss_mb": idle_rss / 1024,
        "peak_rss_mb": max((s[2] for s in samples), default=0) / 1024,
        "cpu_seconds": round(cpu, 2),
        "cpu_percent": 100 * cpu / wall if wall else float("nan"),
        "steady_cpu_percent": steady_cpu,
    }
