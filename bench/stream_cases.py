"""The streaming cases, each a function of the Bench: streamed chat (time to first
byte, each chunk's delay) and ~1 MB embeddings through every proxy, then many
concurrent slow streams against fresh proxies (their RSS and CPU)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import loadgen
import servers
from procs import cpu_busy, tcp_counters
from settings import CHAT_PATH, EMBED_PATH, chat_body

if TYPE_CHECKING:
    from harness import Bench
    from procs import Proc


def case_stream_and_embeddings(bench: Bench, upstream: Proc) -> None:
    proxies = bench.proxies(upstream, "stream")
    targets = {"direct": upstream, **proxies}
    s = bench.s
    params = {"chunks": s.stream_chunks, "interval": s.stream_interval}
    stream = chat_body(stream=True, bench=params)
    embed = bench.embed
    try:
        for name, proc in proxies.items():
            bench.sanity(name, proc.port, CHAT_PATH, stream, b"data: [DONE]")
            bench.sanity(name, proc.port, EMBED_PATH, embed, b'"embedding"')
        core = bench.procs.core("proxy")
        # With --compare and --rounds N: N rounds of all the streams for each target,
        # in alternating order, pooled (each round's samples join the same stats).
        rounds = bench.args.rounds if bench.old else 1
        stats = {name: loadgen.StreamStats() for name in targets}
        other_s = dict.fromkeys(targets, 0.0)
        walls = dict.fromkeys(targets, 0.0)
        for round_no in range(1, rounds + 1):
            for name, proc in bench.in_turn(targets, round_no).items():
                url = f"http://127.0.0.1:{proc.port}{CHAT_PATH}"
                cpu_before, core_before = proc.cpu_seconds(), cpu_busy(core)
                wall = time.monotonic()
                bench.arun(
                    loadgen.stream_run(
                        url,
                        bench.headers(),
                        stream,
                        s.stream_chunks,
                        s.stream_interval,
                        s.streams,
                        s.stream_concurrency,
                        stats[name],
                    )
                )
                walls[name] += time.monotonic() - wall
                if name != "direct":
                    mine = proc.cpu_seconds() - cpu_before
                    other_s[name] += max(0.0, cpu_busy(core) - core_before - mine)
        for name in targets:
            result = loadgen.summarize_streams(stats[name])
            result["rounds"] = rounds
            if name != "direct":
                result["proxy_cpu_other_percent"] = 100 * other_s[name] / walls[name]
            bench.results["stream"][name] = result
            bench.say(
                f"stream {name}: TTFB p50 {result['ttfb_p50_ms']:.2f} p99"
                f" {result['ttfb_p99_ms']:.2f} ms, chunk delay p50"
                f" {result['chunk_delay_p50_ms']:.3f} p99 {result['chunk_delay_p99_ms']:.3f}"
                f" max {result['chunk_delay_max_ms']:.2f} ms, late {result['late_chunks']},"
                f" coalesced {result['held_back']}, failed {result['streams_failed']}"
            )
        script = loadgen.write_lua(bench.workdir, "embed", embed, bench.key)
        for name, proc in targets.items():
            url = f"http://127.0.0.1:{proc.port}{EMBED_PATH}"
            bench.run_wrk(url, script, s.embed_connections, s.warmup_seconds)
            result = bench.measure(name, proc, url, script, s.embed_connections, s.embed_seconds)
            result["mb_per_s"] = result["rps"] * len(embed) / 1e6
            bench.results["embeddings"][name] = result
            bench.say(
                f"embeddings {name}: {result['mb_per_s']:,.0f} MB/s ({result['rps']:,.0f} req/s,"
                f" p50 {result['p50_ms']:.2f} ms){bench.err_note(result)}"
            )
    finally:
        bench.stop(proxies)


def case_slow_streams(bench: Bench, upstream: Proc) -> None:
    """Fresh proxies (so that earlier cases do not show in their RSS), one at a time."""
    s = bench.s
    params = {"chunks": s.slow_chunks, "interval": s.slow_interval}
    body = chat_body(stream=True, bench=params)
    up = f"http://127.0.0.1:{upstream.port}"
    out = bench.results.setdefault("slow_streams", {})
    names = ("hxgw", bench.old, "baseline") if bench.old else ("hxgw", "baseline")
    for name in names:
        if name == "hxgw":
            proc = servers.start_hxgw(bench.procs, bench.config_dir, bench.key, up, "slow")
        elif name == bench.old:
            proc = bench.start_old(up, "slow")
        else:
            proc = servers.start_baseline(bench.procs, up, "slow")
        try:
            bench.sanity(name, proc.port, CHAT_PATH, chat_body(), b"HX-OK")
            time.sleep(0.5)
            url = f"http://127.0.0.1:{proc.port}{CHAT_PATH}"
            timeout = s.slow_chunks * s.slow_interval + 60
            names = ("ListenOverflows", "ListenDrops")
            before = tcp_counters(*names)
            result = bench.arun(
                loadgen.slow_streams(
                    url,
                    bench.headers(),
                    body,
                    s.slow_chunks,
                    s.slow_interval,
                    s.slow_streams,
                    s.slow_ramp,
                    proc.cpu_seconds,
                    proc.rss_kb,
                    timeout,
                )
            )
            after = tcp_counters(*names)
            result["tcp"] = {n: after[n] - before[n] for n in names}
            out[name] = result
            bench.say(
                f"{s.slow_streams} slow streams {name}: peak RSS {result['peak_rss_mb']:.1f} MB"
                f" (idle {result['idle_rss_mb']:.1f}), CPU {result['cpu_percent']:.0f}%"
                f" (steady {result['steady_cpu_percent']:.0f}%), ok {result['streams_ok']},"
                f" failed {result['streams_failed']}, TTFB p50 {result['ttfb_p50_ms']:.0f}"
                f" max {result['ttfb_max_ms']:.0f} ms, {result['tcp']} {result['errors'][:2]}"
            )
        finally:
            bench.stop({name: proc})
