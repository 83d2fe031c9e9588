#!/usr/bin/env python3
"""hxgw benchmark: direct to a fake upstream vs through hxgw, the obvious aiohttp
proxy and nginx, side by side in one run, on loopback.

    python bench/run.py [--quick] [--out bench/results/latest.json] [--markdown]
    python bench/run.py --from bench/results/latest.json --markdown   # render only
    python bench/run.py --compare 7cb0bba --rounds 3   # and hxgw at 7cb0bba beside it

Needs wrk (and nginx for the reference columns): `bench/setup.sh` installs both
from Debian's packages. Runs with the repository's .venv (re-executes itself
there when started by another Python).

Cases: (1) non-streaming chat with wrk at concurrency 1, 16, 64; (2) streamed
chat, 50 chunks: time to first byte and each chunk's one-way delay; (3)
embeddings with a ~1 MB body: MB/s; (4) 1,000 concurrent slow streams: the
proxy's RSS and CPU; (5) CPU per proxied request (from /proc/PID/stat);
(6) the routing decision alone: `hxgw.routing.learned.bench.routing_timings(iterations)
-> {name: microseconds}` when that module exists, else what `hxgw.routing.decision`
offers, else n/a.

On a machine with two or more CPUs the proxy under test gets a CPU of its own;
wrk, the upstreams and the Python clients share another.

With `--compare REV` a second hxgw runs from REV's `hxgw` package (exported with
bench/ab.py's `export_tree`, run through PYTHONPATH with this venv) in a column
`hxgw@REV` of every case that measures an hxgw server (not the workers case, nor
the in-process routing rows), with new/old ratios: before and after, in one run,
on the same machine. Both run on the proxy CPU, one at a time;
with `--rounds N` the chat and stream cases alternate their order each round.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _ensure_venv() -> None:
    try:
        import aiohttp  # noqa: F401
        import orjson  # noqa: F401
        import uvloop  # noqa: F401

        import hxgw  # noqa: F401
    except ImportError as exc:
        venv = REPO / ".venv"
        python = venv / "bin" / "python"
        if python.exists() and Path(sys.prefix).resolve() != venv.resolve():
            os.execv(python, [str(python), *sys.argv])  # noqa: S606
        sys.exit(f"bench: {exc}; run `make install` first, then `make bench`")


if __name__ == "__main__":
    _ensure_venv()

import asyncio  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import ab  # noqa: E402
import loadgen  # noqa: E402
import report  # noqa: E402
import routing_case  # noqa: E402
import servers  # noqa: E402
import uvloop  # noqa: E402
from machine import (  # noqa: E402
    busy_before,
    compare_label,
    machine_info,
    own_cpu,
    pin_cpus,
    remove_stale_workdirs,
    resolve_revision,
)
from procs import Proc, Procs, cpu_busy, raise_nofile, tcp_counters  # noqa: E402
from settings import (  # noqa: E402
    CHAT_PATH,
    EMBED_PATH,
    FULL,
    QUICK,
    Settings,
    case_meta,
    chat_body,
    embed_body,
)


class Bench:
    def __init__(self, settings: Settings, procs: Procs, args: argparse.Namespace) -> None:
        self.s = settings
        self.procs = procs
        self.args = args
        self.workdir = procs.workdir
        self.key = "sk-bench-" + secrets.token_urlsafe(24)
        self.t0 = time.monotonic()
        self.nginx = None if args.no_nginx else servers.nginx_binary()
        self.config_dir = servers.write_hxgw_config(self.workdir / "hxgw-config", args.strategy)
        self.results: dict[str, Any] = {"chat": {}, "stream": {}, "embeddings": {}}
        self.errors: dict[str, dict[str, int]] = {}
        self.warnings: list[str] = []
        self.embed = embed_body()
        self.embed_size = len(self.embed)
        self.old: str | None = None  # the column of --compare REV, e.g. "hxgw@7cb0bba"
        self.old_tree: Path | None = None
        if args.compare:
            self.old = compare_label(args.compare)
            self.old_tree = ab.export_tree(args.compare, self.workdir / "tree-compare")

    # ------------------------------------------------------------------ helpers

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {text}", flush=True)

    def start_old(self, url: str, tag: str) -> Proc:
        """hxgw from the --compare revision's tree, pinned like the one under test."""
        assert self.old_tree is not None
        return ab.start(self.procs, f"old-{tag}", self.old_tree, self.config_dir, self.key, url)

    def proxies(self, upstream: Proc, tag: str) -> dict[str, Proc]:
        url = f"http://127.0.0.1:{upstream.port}"
        started = {"hxgw": servers.start_hxgw(self.procs, self.config_dir, self.key, url, tag)}
        if self.old:
            started[self.old] = self.start_old(url, tag)
        started["baseline"] = servers.start_baseline(self.procs, url, tag)
        if self.nginx:
            started["nginx"] = servers.start_nginx_proxy(self.procs, upstream.port, tag)
        return started

    def stop(self, procs: dict[str, Proc]) -> None:
        for name, proc in procs.items():
            if name.startswith("hxgw"):
                self.scan_hxgw_log(proc)
            self.procs.stop(proc)

    def scan_hxgw_log(self, proc: Proc) -> None:
        """Count hxgw's warning and error lines; keep a few for the report."""
        counts = self.results.setdefault("gateway_log", {"warning": 0, "error": 0, "samples": []})
        try:
            text = proc.log.read_text(errors="replace")
        except OSError:
            return
        for line in text.splitlines():
            level = line.split(" ", 2)[1] if line.count(" ") >= 2 else ""
            if level in ("warning", "error", "critical"):
                counts["warning" if level == "warning" else "error"] += 1
                if "readable by every user" not in line and len(counts["samples"]) < 8:
                    counts["samples"].append(line[:300])

    def note_errors(self, target: str, result: dict[str, Any]) -> None:
        entry = self.errors.setdefault(target, {"errors": 0, "non_2xx": 0, "total": 0})
        entry["errors"] += result["errors"]
        entry["non_2xx"] += result["non_2xx"]
        entry["total"] += result["errors"] + result["non_2xx"]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    def sanity(self, name: str, port: int, path: str, body: bytes, expect: bytes) -> None:
        """One request before any load: the right status and body, or stop here."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("POST", path, body=body, headers=self.headers())
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status != 200 or expect not in data:
            raise RuntimeError(
                f"sanity check failed for {name} {path}: {response.status} {data[:300]!r}"
            )

    def run_wrk(self, url: str, script: Path, connections: int, seconds: int) -> dict[str, Any]:
        return loadgen.wrk(url, script, connections, seconds, self.procs.core("load"))

    def measure(
        self, name: str, proc: Proc, url: str, script: Path, connections: int, seconds: int
    ) -> dict[str, Any]:
        """One measured wrk run with the proxy's CPU time, and how busy other processes
        kept the proxy's CPU meanwhile (interference: that CPU's busy time minus ours)."""
        core = self.procs.core("proxy")
        cpu_before, core_before = proc.cpu_seconds(), cpu_busy(core)
        result = self.run_wrk(url, script, connections, seconds)
        cpu, core_busy = proc.cpu_seconds() - cpu_before, cpu_busy(core) - core_before
        if name != "direct":
            other = max(0.0, core_busy - cpu)
            result["proxy_cpu_other_percent"] = 100 * other / result["seconds"]
            result["cpu_us_per_request"] = 1e6 * cpu / max(result["requests"], 1)
            result["cpu_percent"] = 100 * cpu / result["seconds"]
        self.note_errors(name, result)
        return result

    # ------------------------------------------------------------------ the run

    def run(self) -> dict[str, Any]:
        upstream = servers.start_upstream(self.procs)
        fixed = servers.start_nginx_fixed(self.procs) if self.nginx else None
        chat_upstream = self.choose_upstream(upstream, fixed)
        self.case_chat(chat_upstream)
        self.case_stream_and_embeddings(upstream)
        self.case_slow_streams(upstream)
        self.case_workers(chat_upstream)
        if self.old:
            self.ab_cpu(chat_upstream)
        self.results["routing"] = routing_case.run(
            self.config_dir, self.key, self.s.routing_iterations, chat_body()
        )
        self.say(
            "routing: "
            + ", ".join(f"{r['name']} {r['us']}" for r in self.results["routing"]["rows"])
        )
        self.results["errors"] = self.errors
        return self.results

    def choose_upstream(self, upstream: Proc, fixed: Proc | None) -> Proc:
        """The non-streaming cases need an upstream faster than any proxy in front of it:
        measure both fake upstreams directly and take the faster."""
        script = loadgen.write_lua(self.workdir, "probe", chat_body(), self.key)
        probe: dict[str, float] = {}
        for name, proc in (("aiohttp", upstream), ("nginx", fixed)):
            if proc is None:
                continue
            url = f"http://127.0.0.1:{proc.port}{CHAT_PATH}"
            result = self.run_wrk(url, script, 16, self.s.probe_seconds)
            probe[name] = result["rps"]
            self.say(f"upstream probe c16: {name} {result['rps']:,.0f} req/s")
        forced = self.args.upstream
        chosen = (
            forced if forced != "auto" and forced in probe else max(probe, key=probe.__getitem__)
        )
        self.results["upstream_probe"] = {"rps_c16": probe, "chosen": chosen}
        return fixed if chosen == "nginx" and fixed is not None else upstream

    def case_chat(self, upstream: Proc) -> None:
        proxies = self.proxies(upstream, "chat")
        try:
            for name, proc in proxies.items():
                self.sanity(name, proc.port, CHAT_PATH, chat_body(), b"HX-OK")
            script = loadgen.write_lua(self.workdir, "chat", chat_body(), self.key)
            targets = {"direct": upstream, **proxies}
            rounds = self.args.rounds
            for round_no in range(1, rounds + 1):
                for conc in self.s.concurrencies:
                    row = self.results["chat"].setdefault(str(conc), {})
                    for name, proc in self.in_turn(targets, round_no).items():
                        url = f"http://127.0.0.1:{proc.port}{CHAT_PATH}"
                        self.run_wrk(url, script, conc, self.s.warmup_seconds)
                        result = self.measure(name, proc, url, script, conc, self.s.chat_seconds)
                        result["round"] = round_no
                        best = row.get(name)
                        all_rps = [*(best or {}).get("rounds_rps", []), round(result["rps"])]
                        if best is None or result["rps"] > best["rps"]:
                            best = row[name] = result
                        best["rounds_rps"] = all_rps
                        self.report_chat(conc, name, result, round_no)
        finally:
            self.stop(proxies)

    def in_turn(self, targets: dict[str, Proc], round_no: int) -> dict[str, Proc]:
        """The targets in their order; with --compare, hxgw and hxgw@REV run next to
        each other, new first in odd rounds and old first in even ones, so that a
        change of the machine's speed falls on both."""
        if not self.old or self.old not in targets:
            return targets
        pair = ["hxgw", self.old] if round_no % 2 else [self.old, "hxgw"]
        names = [n for n in targets if n not in pair]
        at = names.index("direct") + 1 if "direct" in names else 0
        return {n: targets[n] for n in [*names[:at], *pair, *names[at:]]}

    def ab_cpu(self, upstream: Proc) -> None:
        """CPU per request of new and old in alternation (bench/ab.py's way): 1 s
        turns at c16, A B, B A, ..., both alive all along, one busy at a time."""
        url_up = f"http://127.0.0.1:{upstream.port}"
        script = loadgen.write_lua(self.workdir, "chat", chat_body(), self.key)
        assert self.old is not None
        sides = {
            "hxgw": servers.start_hxgw(self.procs, self.config_dir, self.key, url_up, "ab"),
            self.old: self.start_old(url_up, "ab"),
        }
        turns = 10 * self.args.rounds
        totals = {name: [0, 0.0] for name in sides}
        per_turn: list[float] = []
        try:
            for name, proc in sides.items():
                self.sanity(name, proc.port, CHAT_PATH, chat_body(), b"HX-OK")
                self.run_wrk(f"http://127.0.0.1:{proc.port}{CHAT_PATH}", script, 16, 1)
            for turn in range(turns):
                order = list(sides) if turn % 2 == 0 else list(sides)[::-1]
                us: dict[str, float] = {}
                for name in order:
                    proc = sides[name]
                    before = proc.cpu_seconds()
                    url = f"http://127.0.0.1:{proc.port}{CHAT_PATH}"
                    result = self.run_wrk(url, script, 16, 1)
                    cpu = proc.cpu_seconds() - before
                    self.note_errors(name, result)
                    totals[name][0] += result["requests"]
                    totals[name][1] += cpu
                    us[name] = 1e6 * cpu / max(result["requests"], 1)
                per_turn.append(us["hxgw"] / us[self.old])
        finally:
            self.stop(sides)
        figures = {
            name: {"requests": n, "cpu_us_per_request": 1e6 * cpu / max(n, 1)}
            for name, (n, cpu) in totals.items()
        }
        self.results["ab_cpu"] = {
            **figures,
            "turns": turns,
            "ratio": figures["hxgw"]["cpu_us_per_request"]
            / figures[self.old]["cpu_us_per_request"],
            "turn_ratios": [round(r, 4) for r in per_turn],
        }
        self.say(
            f"CPU/request in alternation ({turns} turns of 1 s, c16): hxgw"
            f" {figures['hxgw']['cpu_us_per_request']:.0f} us, {self.old}"
            f" {figures[self.old]['cpu_us_per_request']:.0f} us,"
            f" new/old {self.results['ab_cpu']['ratio']:.3f}"
        )

    def case_workers(self, upstream: Proc) -> None:
        """`workers: 1` against `workers: 2` at c16, neither pinned: what a second worker
        buys on this machine, where wrk and the upstream need a CPU too."""
        url_up = f"http://127.0.0.1:{upstream.port}"
        script = loadgen.write_lua(self.workdir, "chat", chat_body(), self.key)
        row: dict[str, Any] = {}
        for workers in (1, 2):
            proc = servers.start_hxgw(
                self.procs, self.config_dir, self.key, url_up, f"workers{workers}", workers
            )
            try:
                self.sanity(f"hxgw x{workers}", proc.port, CHAT_PATH, chat_body(), b"HX-OK")
                url = f"http://127.0.0.1:{proc.port}{CHAT_PATH}"
                self.run_wrk(url, script, 16, self.s.warmup_seconds)
                result = self.run_wrk(url, script, 16, self.s.chat_seconds)
                self.note_errors(f"hxgw x{workers}", result)
                row[str(workers)] = result
                self.say(f"workers={workers} c=16: {result['rps']:,.0f} req/s (unpinned)")
            finally:
                self.stop({"hxgw": proc})
        self.results["workers"] = row

    def report_chat(self, conc: int, name: str, result: dict[str, Any], round_no: int) -> None:
        cpu_note = f", {result['cpu_us_per_request']:.0f} us CPU/req" if name != "direct" else ""
        tag = f" (round {round_no})" if self.args.rounds > 1 else ""
        other = result.get("proxy_cpu_other_percent")
        other_note = f"; other load on proxy CPU {other:.0f}%" if other is not None else ""
        self.say(
            f"chat c={conc} {name}{tag}: {result['rps']:,.0f} req/s, p50 {result['p50_ms']:.2f}"
            f" p99 {result['p99_ms']:.2f} ms{cpu_note}{other_note}{self._err_note(result)}"
        )

    @staticmethod
    def _err_note(result: dict[str, Any]) -> str:
        if result["errors"] or result["non_2xx"]:
            return f"  [errors {result['errors']}, non-2xx {result['non_2xx']}]"
        return ""

    def case_stream_and_embeddings(self, upstream: Proc) -> None:
        proxies = self.proxies(upstream, "stream")
        targets = {"direct": upstream, **proxies}
        s = self.s
        params = {"chunks": s.stream_chunks, "interval": s.stream_interval}
        stream = chat_body(stream=True, bench=params)
        embed = self.embed
        try:
            for name, proc in proxies.items():
                self.sanity(name, proc.port, CHAT_PATH, stream, b"data: [DONE]")
                self.sanity(name, proc.port, EMBED_PATH, embed, b'"embedding"')
            core = self.procs.core("proxy")
            # With --compare and --rounds N: N rounds of all the streams for each target,
            # in alternating order, pooled (each round's samples join the same stats).
            rounds = self.args.rounds if self.old else 1
            stats = {name: loadgen.StreamStats() for name in targets}
            other_s = dict.fromkeys(targets, 0.0)
            walls = dict.fromkeys(targets, 0.0)
            for round_no in range(1, rounds + 1):
                for name, proc in self.in_turn(targets, round_no).items():
                    url = f"http://127.0.0.1:{proc.port}{CHAT_PATH}"
                    cpu_before, core_before = proc.cpu_seconds(), cpu_busy(core)
                    wall = time.monotonic()
                    self.arun(
                        loadgen.stream_run(
                            url,
                            self.headers(),
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
                self.results["stream"][name] = result
                self.say(
                    f"stream {name}: TTFB p50 {result['ttfb_p50_ms']:.2f} p99"
                    f" {result['ttfb_p99_ms']:.2f} ms, chunk delay p50"
                    f" {result['chunk_delay_p50_ms']:.3f} p99 {result['chunk_delay_p99_ms']:.3f}"
                    f" max {result['chunk_delay_max_ms']:.2f} ms, late {result['late_chunks']},"
                    f" coalesced {result['held_back']}, failed {result['streams_failed']}"
                )
            script = loadgen.write_lua(self.workdir, "embed", embed, self.key)
            for name, proc in targets.items():
                url = f"http://127.0.0.1:{proc.port}{EMBED_PATH}"
                self.run_wrk(url, script, s.embed_connections, s.warmup_seconds)
                result = self.measure(name, proc, url, script, s.embed_connections, s.embed_seconds)
                result["mb_per_s"] = result["rps"] * len(embed) / 1e6
                self.results["embeddings"][name] = result
                self.say(
                    f"embeddings {name}: {result['mb_per_s']:,.0f} MB/s ({result['rps']:,.0f} req/s,"
                    f" p50 {result['p50_ms']:.2f} ms){self._err_note(result)}"
                )
        finally:
            self.stop(proxies)

    def case_slow_streams(self, upstream: Proc) -> None:
        """Fresh proxies (so that earlier cases do not show in their RSS), one at a time."""
        s = self.s
        params = {"chunks": s.slow_chunks, "interval": s.slow_interval}
        body = chat_body(stream=True, bench=params)
        up = f"http://127.0.0.1:{upstream.port}"
        out = self.results.setdefault("slow_streams", {})
        names = ("hxgw", self.old, "baseline") if self.old else ("hxgw", "baseline")
        for name in names:
            if name == "hxgw":
                proc = servers.start_hxgw(self.procs, self.config_dir, self.key, up, "slow")
            elif name == self.old:
                proc = self.start_old(up, "slow")
            else:
                proc = servers.start_baseline(self.procs, up, "slow")
            try:
                self.sanity(name, proc.port, CHAT_PATH, chat_body(), b"HX-OK")
                time.sleep(0.5)
                url = f"http://127.0.0.1:{proc.port}{CHAT_PATH}"
                timeout = s.slow_chunks * s.slow_interval + 60
                names = ("ListenOverflows", "ListenDrops")
                before = tcp_counters(*names)
                result = self.arun(
                    loadgen.slow_streams(
                        url,
                        self.headers(),
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
                self.say(
                    f"{s.slow_streams} slow streams {name}: peak RSS {result['peak_rss_mb']:.1f} MB"
                    f" (idle {result['idle_rss_mb']:.1f}), CPU {result['cpu_percent']:.0f}%"
                    f" (steady {result['steady_cpu_percent']:.0f}%), ok {result['streams_ok']},"
                    f" failed {result['streams_failed']}, TTFB p50 {result['ttfb_p50_ms']:.0f}"
                    f" max {result['ttfb_max_ms']:.0f} ms, {result['tcp']} {result['errors'][:2]}"
                )
            finally:
                self.stop({name: proc})

    @staticmethod
    def arun(coro: Any) -> Any:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (about a minute)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--markdown", action="store_true", help="also print a README table")
    parser.add_argument("--from", dest="from_json", type=Path, help="render a saved run; no run")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--no-nginx", action="store_true", help="leave nginx out")
    parser.add_argument(
        "--upstream",
        choices=("auto", "nginx", "aiohttp"),
        default="auto",
        help="fake upstream for the non-streaming chat case (auto: the faster, measured)",
    )
    parser.add_argument(
        "--strategy", default="failover", help="hxgw's routing strategy (routing.yaml)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the chat case N times, keep each figure's best round (busy machines);"
        " with --compare, the stream case and the CPU turns too",
    )
    parser.add_argument(
        "--compare",
        metavar="REV",
        help="also run hxgw from git revision REV (or a directory holding an hxgw package)"
        " as a column hxgw@REV, with new/old ratios",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, configs)")
    return parser.parse_args(argv)


def render(results: dict[str, Any], markdown: bool) -> None:
    print(report.plain(results))
    if markdown:
        print("\n--- markdown for README.md ---\n")
        print(report.markdown(results))


def _on_signal(signum: int, frame: Any) -> None:
    print(f"\nbench: {signal.Signals(signum).name}; stopping every process it started", flush=True)
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        render(json.loads(args.from_json.read_text()), args.markdown)
        return 0
    if not shutil.which("wrk"):
        print(
            "bench: wrk is missing. Install it with bench/setup.sh, or: apt-get install -y wrk nginx-light"
        )
        return 2
    if not args.no_nginx and not servers.nginx_binary():
        print(
            "bench: nginx is missing, so no nginx columns (apt-get install -y nginx-light, or nginx)"
        )
    settings = QUICK if args.quick else FULL
    raise_nofile()
    cores, pinning = pin_cpus(args.no_pin)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)

    quiet = busy_before()
    if quiet > 25:
        print(
            f"bench: warning: other processes keep {quiet:.0f}% of one CPU busy right now;"
            " the figures will be low and noisy (ratios suffer less; --rounds N helps)",
            flush=True,
        )
    remove_stale_workdirs()
    workdir = Path(tempfile.mkdtemp(prefix="hxgw-bench-"))
    (workdir / "owner.pid").write_text(str(os.getpid()))
    procs = Procs(workdir, cores)
    meta: dict[str, Any] = {
        "machine": machine_info(),
        "quick": settings.quick,
        "rounds": args.rounds,
        "pinning": pinning,
        "busy_before_percent": round(quiet, 1),
    }
    if args.compare:
        meta["compare"] = {
            "revision": args.compare,
            "commit": resolve_revision(args.compare),
            "label": compare_label(args.compare),
        }
    busy0, own0, wall0 = cpu_busy(None), own_cpu(), time.monotonic()
    bench = Bench(settings, procs, args)
    print(f"bench: work dir {workdir}; {pinning}", flush=True)
    try:
        results = bench.run()
    except Exception:
        for proc in procs.running:
            tail = proc.log_tail(5)
            if tail:
                print(f"--- {proc.name} log (last lines) ---\n{tail}")
        raise
    finally:
        procs.stop_all()
        if args.keep:
            (workdir / "owner.pid").unlink(missing_ok=True)
            print(f"bench: kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    wall = time.monotonic() - wall0
    other = max(0.0, cpu_busy(None) - busy0 - (own_cpu() - own0))
    meta.update(
        runtime_s=round(wall, 1),
        settings=settings.__dict__,
        strategy=args.strategy,
        background_cpu_s=round(other, 1),
        background_note=(
            f"{other:.0f} CPU-seconds over {wall:.0f} s, i.e. {100 * other / wall:.0f}% of one CPU"
            " on average (not counting this benchmark's own processes)"
        ),
        **case_meta(settings, bench.embed_size),
        warnings=bench.warnings,
    )
    probe = results.get("upstream_probe", {})
    rates = ", ".join(f"{k} {v:,.0f} req/s" for k, v in probe.get("rps_c16", {}).items())
    meta["chat_upstream_note"] = (
        f"{probe.get('chosen')} fixed JSON (measured directly at c16 with wrk: {rates}); "
        "streams and embeddings: bench/upstream.py (aiohttp + uvloop)"
    )
    if other / wall > 0.25:
        bench.warnings.append(
            "other processes used the CPUs during this run; absolute figures are low and noisy,"
            " the side-by-side ratios hold up better"
        )
    results = {"meta": meta, **results}
    results["derived"] = report.derive(results)
    results["targets"] = report.targets(results)
    print()
    render(results, args.markdown)
    write_results(results, args.out)
    return 0


def write_results(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_finite(results), indent=2, allow_nan=False, default=str) + "\n"
    out.write_text(text)
    stamp = results["meta"]["machine"]["date"].replace(":", "").replace("-", "")[:15]
    copy = out.parent / f"{stamp}{'-quick' if results['meta']['quick'] else ''}.json"
    copy.write_text(text)
    print(f"\nbench: wrote {out} and {copy}")


def _finite(value: Any) -> Any:
    """NaN and infinities (a case with no samples) become null: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\nbench: interrupted; every process it started is stopped", file=sys.stderr)
        sys.exit(130)
