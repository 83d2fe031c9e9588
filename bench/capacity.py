"""Capacity: many concurrent slow streams on the default config, and overload.

    python bench/capacity.py [--streams 10000] [--quick] [--out FILE]

- **streams**: `--streams` slow streams (one chunk a second), started over a few
  seconds and all open together, first straight to the upstream (the baseline),
  then through hxgw on its default config. Reported: streams completed, time to
  first byte p50/p99 for both and what hxgw added, hxgw's peak RSS (all its
  processes) and CPU. A process may open 20,000 descriptors on the machines
  this was written on and a stream through the gateway takes two, so hxgw runs
  `--workers 2` here; under systemd's LimitNOFILE=65536 one process holds 32k.
- **overload**: twice an upstream's cap of streams at once against a small
  `max_concurrent`. Reported: how many were served and shed, the slowest 503
  (it must come within `queue_timeout`), whether every 503 had a Retry-After,
  whether anything hung, and RSS before, at peak and after, twice over.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import loadgen
import servers
import uvloop
from procs import Proc, Procs, raise_nofile

HERE = Path(__file__).resolve().parent
PATH = "/v1/chat/completions"
OVERLOAD_CAP, OVERLOAD_QUEUE, QUEUE_TIMEOUT = 200, 50, 2.0


def tree_pids(pid: int) -> list[int]:
    """`pid` and its descendants (a supervisor and its workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = (task / "children").read_text().split() if task.exists() else []
            todo.extend(int(c) for c in children)
    return found


def tree_rss_kb(proc: Proc) -> int:
    total = 0
    for pid in tree_pids(proc.pid):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def tree_cpu_seconds(proc: Proc) -> float:
    total = 0.0
    for pid in tree_pids(proc.pid):
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / 100
    return total


def write_config(directory: Path, gateway_yaml: str) -> Path:
    servers.write_hxgw_config(directory, "failover")
    (directory / "gateway.yaml").write_text(gateway_yaml)
    return directory


def start_hxgw(procs: Procs, directory: Path, key: str, upstream: str, tag: str,
               workers: int | None) -> Proc:
    return servers.start_hxgw(procs, directory, key, upstream, tag, workers=workers)


def streams_case(procs: Procs, work: Path, upstream: Proc, streams: int, chunks: int) -> dict[str, Any]:
    key = secrets.token_urlsafe(16)
    up = f"http://127.0.0.1:{upstream.port}"
    body = json.dumps({"model": servers.GROUP, "stream": True, "messages": [
        {"role": "user", "content": "hi"}], "bench": {"chunks": chunks, "interval": 1.0}}).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    # Started at 700 a second and lasting `chunks` seconds each: with 30 chunks, all
    # 10,000 are open together from the end of the ramp until the first ones end.
    ramp = max(2.0, streams / 700)
    timeout = chunks + ramp + 120
    out: dict[str, Any] = {}
    out["direct"] = run(loadgen.slow_streams(
        up + PATH, headers, body, chunks, 1.0, streams, ramp,
        upstream.cpu_seconds, upstream.rss_kb, timeout))
    # The default config: no caps set, the upstream's share comes from the fd limit.
    config = write_config(work / "streams", "shutdown:\n  drain_timeout: 1\n")
    hxgw = start_hxgw(procs, config, key, up, "streams", workers=2)
    time.sleep(2)
    out["hxgw"] = run(loadgen.slow_streams(
        f"http://127.0.0.1:{hxgw.port}{PATH}", headers, body, chunks, 1.0, streams, ramp,
        lambda: tree_cpu_seconds(hxgw), lambda: tree_rss_kb(hxgw), timeout))
    out["hxgw_queueing"] = run(queueing(hxgw.port, key))
    procs.stop(hxgw)
    for name in ("ttfb_p50_ms", "ttfb_p99_ms"):
        out[f"added_{name}"] = out["hxgw"][name] - out["direct"][name]
    return out


async def queueing(port: int, key: str) -> dict[str, float]:
    """What the gateway's own metrics say of queueing: requests that waited, and shed."""
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        text = await resp.text()
    wanted = {"hxgw_upstream_queue_seconds_count": "waited", "hxgw_upstream_shed_total": "shed"}
    found = {name: 0.0 for name in wanted.values()}
    for line in text.splitlines():
        metric = line.split("{")[0].split(" ")[0]
        if metric in wanted:
            found[wanted[metric]] += float(line.rsplit(" ", 1)[1])
    return found


async def overload_round(url: str, headers: dict[str, str], body: bytes, count: int,
                         hang_after: float) -> dict[str, Any]:
    """`count` streams at once; each one's status, and how long a 503 took (one not over
    in `hang_after` seconds counts as hung)."""
    served, shed, shed_seconds, no_retry_after, hung, other = 0, 0, [], 0, 0, 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            nonlocal served, shed, no_retry_after, hung, other
            started = time.monotonic()
            try:
                async with session.post(url, data=body, headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=hang_after)) as resp:
                    if resp.status == 503:
                        shed_seconds.append(time.monotonic() - started)
                        shed += 1
                        no_retry_after += "Retry-After" not in resp.headers
                    await resp.read()
                    served += resp.status == 200
                    other += resp.status not in (200, 503)
            except TimeoutError:
                hung += 1

        await asyncio.gather(*(one() for _ in range(count)))
    return {"requests": count, "served": served, "shed": shed, "other_status": other,
            "hung": hung, "slowest_503_s": round(max(shed_seconds, default=0.0), 3),
            "shed_within_0.5s": sum(1 for s in shed_seconds if s < 0.5),
            "shed_without_retry_after": no_retry_after}


def overload_case(procs: Procs, work: Path, upstream: Proc, chunks: int) -> dict[str, Any]:
    key = secrets.token_urlsafe(16)
    up = f"http://127.0.0.1:{upstream.port}"
    config = write_config(work / "overload", (
        f"upstreams:\n  default:\n    max_concurrent: {OVERLOAD_CAP}\n"
        f"    max_queued: {OVERLOAD_QUEUE}\n    queue_timeout: {QUEUE_TIMEOUT}\n"
        "shutdown:\n  drain_timeout: 1\n"))
    hxgw = start_hxgw(procs, config, key, up, "overload", workers=None)
    body = json.dumps({"model": servers.GROUP, "stream": True, "messages": [
        {"role": "user", "content": "hi"}], "bench": {"chunks": chunks, "interval": 1.0}}).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    time.sleep(1)
    out: dict[str, Any] = {"cap": OVERLOAD_CAP, "max_queued": OVERLOAD_QUEUE,
                           "queue_timeout_s": QUEUE_TIMEOUT, "rss_base_mb": hxgw.rss_kb() / 1024}
    for round_ in (1, 2):
        result = run(overload_round(f"http://127.0.0.1:{hxgw.port}{PATH}", headers, body,
                                    2 * OVERLOAD_CAP, chunks + 30))
        time.sleep(3)
        result["rss_after_mb"] = hxgw.rss_kb() / 1024
        out[f"round{round_}"] = result
    procs.stop(hxgw)
    return out


def run(coro: Any) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="2,000 streams, short ones")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "capacity.json")
    args = parser.parse_args(argv)
    streams, chunks = (2000, 5) if args.quick else (args.streams, 30)
    raise_nofile()
    results: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="hxgw-capacity-") as tmp:
        work = Path(tmp)
        procs = Procs(work, cores=None)
        try:
            upstream = servers.start_upstream(procs)
            results["streams"] = streams_case(procs, work, upstream, streams, chunks)
            results["overload"] = overload_case(procs, work, upstream, chunks=5)
        finally:
            procs.stop_all()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
