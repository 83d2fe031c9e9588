"""The Bench: what every case needs. It holds the run's settings, processes and
results, starts the proxies (hxgw, hxgw@REV with `--compare`, the aiohttp baseline,
nginx) in front of an upstream and stops them, checks each with one request, runs
wrk and measures a proxy's CPU meanwhile. The cases are functions of the Bench
(chat_cases, stream_cases), run in order by cases.run_cases."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import secrets
import time
from pathlib import Path
from typing import Any

import ab
import loadgen
import servers
import uvloop
from machine import compare_label
from procs import Proc, Procs, cpu_busy
from settings import Settings, embed_body


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

    @staticmethod
    def err_note(result: dict[str, Any]) -> str:
        """A wrk result's errors and non-2xx responses, for a progress line ('' if none)."""
        if result["errors"] or result["non_2xx"]:
            return f"  [errors {result['errors']}, non-2xx {result['non_2xx']}]"
        return ""

    @staticmethod
    def arun(coro: Any) -> Any:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
