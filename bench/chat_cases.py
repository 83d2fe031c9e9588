"""The non-streaming cases, each a function of the Bench: the choice of the fake
upstream, chat through every proxy at each concurrency (best of `--rounds`), the CPU
per request of hxgw and hxgw@REV in alternation (with `--compare`), and one worker
against two."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import loadgen
import servers
from settings import CHAT_PATH, chat_body

if TYPE_CHECKING:
    from harness import Bench
    from procs import Proc


def choose_upstream(bench: Bench, upstream: Proc, fixed: Proc | None) -> Proc:
    """The non-streaming cases need an upstream faster than any proxy in front of it:
    measure both fake upstreams directly and take the faster."""
    script = loadgen.write_lua(bench.workdir, "probe", chat_body(), bench.key)
    probe: dict[str, float] = {}
    for name, proc in (("aiohttp", upstream), ("nginx", fixed)):
        if proc is None:
            continue
        url = f"http://127.0.0.1:{proc.port}{CHAT_PATH}"
        result = bench.run_wrk(url, script, 16, bench.s.probe_seconds)
        probe[name] = result["rps"]
        bench.say(f"upstream probe c16: {name} {result['rps']:,.0f} req/s")
    forced = bench.args.upstream
    chosen = forced if forced != "auto" and forced in probe else max(probe, key=probe.__getitem__)
    bench.results["upstream_probe"] = {"rps_c16": probe, "chosen": chosen}
    return fixed if chosen == "nginx" and fixed is not None else upstream


def case_chat(bench: Bench, upstream: Proc) -> None:
    proxies = bench.proxies(upstream, "chat")
    try:
        for name, proc in proxies.items():
            bench.sanity(name, proc.port, CHAT_PATH, chat_body(), b"HX-OK")
        script = loadgen.write_lua(bench.workdir, "chat", chat_body(), bench.key)
        targets = {"direct": upstream, **proxies}
        rounds = bench.args.rounds
        for round_no in range(1, rounds + 1):
            for conc in bench.s.concurrencies:
                row = bench.results["chat"].setdefault(str(conc), {})
                for name, proc in bench.in_turn(targets, round_no).items():
                    url = f"http://127.0.0.1:{proc.port}{CHAT_PATH}"
                    bench.run_wrk(url, script, conc, bench.s.warmup_seconds)
                    result = bench.measure(name, proc, url, script, conc, bench.s.chat_seconds)
                    result["round"] = round_no
                    best = row.get(name)
                    all_rps = [*(best or {}).get("rounds_rps", []), round(result["rps"])]
                    if best is None or result["rps"] > best["rps"]:
                        best = row[name] = result
                    best["rounds_rps"] = all_rps
                    report_chat(bench, conc, name, result, round_no)
    finally:
        bench.stop(proxies)


def ab_cpu(bench: Bench, upstream: Proc) -> None:
    """CPU per request of new and old in alternation (bench/ab.py's way): 1 s
    turns at c16, A B, B A, ..., both alive all along, one busy at a time."""
    url_up = f"http://127.0.0.1:{upstream.port}"
    script = loadgen.write_lua(bench.workdir, "chat", chat_body(), bench.key)
    assert bench.old is not None
    sides = {
        "hxgw": servers.start_hxgw(bench.procs, bench.config_dir, bench.key, url_up, "ab"),
        bench.old: bench.start_old(url_up, "ab"),
    }
    turns = 10 * bench.args.rounds
    totals = {name: [0, 0.0] for name in sides}
    per_turn: list[float] = []
    try:
        for name, proc in sides.items():
            bench.sanity(name, proc.port, CHAT_PATH, chat_body(), b"HX-OK")
            bench.run_wrk(f"http://127.0.0.1:{proc.port}{CHAT_PATH}", script, 16, 1)
        for turn in range(turns):
            order = list(sides) if turn % 2 == 0 else list(sides)[::-1]
            us: dict[str, float] = {}
            for name in order:
                proc = sides[name]
                before = proc.cpu_seconds()
                url = f"http://127.0.0.1:{proc.port}{CHAT_PATH}"
                result = bench.run_wrk(url, script, 16, 1)
                cpu = proc.cpu_seconds() - before
                bench.note_errors(name, result)
                totals[name][0] += result["requests"]
                totals[name][1] += cpu
                us[name] = 1e6 * cpu / max(result["requests"], 1)
            per_turn.append(us["hxgw"] / us[bench.old])
    finally:
        bench.stop(sides)
    figures = {
        name: {"requests": n, "cpu_us_per_request": 1e6 * cpu / max(n, 1)}
        for name, (n, cpu) in totals.items()
    }
    bench.results["ab_cpu"] = {
        **figures,
        "turns": turns,
        "ratio": figures["hxgw"]["cpu_us_per_request"] / figures[bench.old]["cpu_us_per_request"],
        "turn_ratios": [round(r, 4) for r in per_turn],
    }
    bench.say(
        f"CPU/request in alternation ({turns} turns of 1 s, c16): hxgw"
        f" {figures['hxgw']['cpu_us_per_request']:.0f} us, {bench.old}"
        f" {figures[bench.old]['cpu_us_per_request']:.0f} us,"
        f" new/old {bench.results['ab_cpu']['ratio']:.3f}"
    )


def case_workers(bench: Bench, upstream: Proc) -> None:
    """`workers: 1` against `workers: 2` at c16, neither pinned: what a second worker
    buys on this machine, where wrk and the upstream need a CPU too."""
    url_up = f"http://127.0.0.1:{upstream.port}"
    script = loadgen.write_lua(bench.workdir, "chat", chat_body(), bench.key)
    row: dict[str, Any] = {}
    for workers in (1, 2):
        proc = servers.start_hxgw(
            bench.procs, bench.config_dir, bench.key, url_up, f"workers{workers}", workers
        )
        try:
            bench.sanity(f"hxgw x{workers}", proc.port, CHAT_PATH, chat_body(), b"HX-OK")
            url = f"http://127.0.0.1:{proc.port}{CHAT_PATH}"
            bench.run_wrk(url, script, 16, bench.s.warmup_seconds)
            result = bench.run_wrk(url, script, 16, bench.s.chat_seconds)
            bench.note_errors(f"hxgw x{workers}", result)
            row[str(workers)] = result
            bench.say(f"workers={workers} c=16: {result['rps']:,.0f} req/s (unpinned)")
        finally:
            bench.stop({"hxgw": proc})
    bench.results["workers"] = row


def report_chat(bench: Bench, conc: int, name: str, result: dict[str, Any], round_no: int) -> None:
    cpu_note = f", {result['cpu_us_per_request']:.0f} us CPU/req" if name != "direct" else ""
    tag = f" (round {round_no})" if bench.args.rounds > 1 else ""
    other = result.get("proxy_cpu_other_percent")
    other_note = f"; other load on proxy CPU {other:.0f}%" if other is not None else ""
    bench.say(
        f"chat c={conc} {name}{tag}: {result['rps']:,.0f} req/s, p50 {result['p50_ms']:.2f}"
        f" p99 {result['p99_ms']:.2f} ms{cpu_note}{other_note}{bench.err_note(result)}"
    )
