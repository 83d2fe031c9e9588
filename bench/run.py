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
Here: the command line, main and the results file. The run itself: settings.py,
machine.py, harness.py (the Bench), cases.py (their order, the results file),
chat_cases.py, stream_cases.py; the report:
derived.py, goals.py, table.py, report.py, columns.py.
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

import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import cases  # noqa: E402
import derived  # noqa: E402
import goals  # noqa: E402
import report  # noqa: E402
import servers  # noqa: E402
from harness import Bench  # noqa: E402
from machine import (  # noqa: E402
    busy_before,
    compare_label,
    machine_info,
    own_cpu,
    pin_cpus,
    remove_stale_workdirs,
    resolve_revision,
)
from procs import Procs, cpu_busy, raise_nofile  # noqa: E402
from settings import FULL, QUICK, case_meta  # noqa: E402


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
        results = cases.run_cases(bench)
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
    results["derived"] = derived.derive(results)
    results["targets"] = goals.targets(results)
    print()
    render(results, args.markdown)
    cases.write_results(results, args.out)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\nbench: interrupted; every process it started is stopped", file=sys.stderr)
        sys.exit(130)
