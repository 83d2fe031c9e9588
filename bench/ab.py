#!/usr/bin/env python3
"""CPU per request of two versions of hxgw, measured in alternation.

    python bench/ab.py REV_A REV_B [--rounds 20] [--seconds 1] [--connections 16]

A revision is anything `git archive` takes (a commit, a tag, HEAD~3), `.` for the
working tree as it is, or a directory that holds an `hxgw` package. Why: this VM's speed swings by a third from hour to hour,
so two `make bench` runs cannot tell a 5% change from the weather, and the count
of `make bench-instructions` is not time (a build with 17% fewer instructions ran
no faster; cache misses and the kernel's share are not in the count). Here both
versions run side by side, pinned to the same CPU, against the same nginx
upstream, and wrk drives them in turns of a second, in the order A B, B A, A B...
so that a change of the machine's speed falls on both. Each side's figure is its
CPU seconds (utime + stime from /proc) over the requests it answered.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import loadgen
import servers
from procs import Proc, Procs, free_port

REPO = Path(__file__).resolve().parent.parent


def export_tree(revision: str, into: Path) -> Path:
    """The `hxgw` package of `revision` (or of the working tree, for `.`) under `into`."""
    if (Path(revision) / "hxgw" / "__init__.py").is_file() and revision != ".":
        return Path(revision).resolve()  # a directory that holds a (maybe compiled) hxgw
    into.mkdir(parents=True)
    if revision == ".":
        shutil.copytree(REPO / "hxgw", into / "hxgw", ignore=shutil.ignore_patterns("__pycache__"))
        return into
    archive = subprocess.run(  # noqa: S603 - fixed argv
        ["git", "-C", str(REPO), "archive", "--format=tar", revision, "hxgw"],  # noqa: S607
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def start(
    procs: Procs,
    label: str,
    tree: Path,
    config: Path,
    key: str,
    upstream: str,
    extra_env: dict[str, str] | None = None,
) -> Proc:
    env = {**servers.hxgw_env(key, upstream), "PYTHONPATH": str(tree), **(extra_env or {})}
    found = subprocess.run(
        [sys.executable, "-c", "import hxgw; print(hxgw.__file__)"],
        env=env,
        cwd=procs.workdir,  # where the server runs: its sys.path starts there
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not found.startswith(str(tree)):
        sys.exit(f"bench/ab.py: {label} would run {found}, not the tree under {tree}")
    port = free_port()
    argv = [sys.executable, "-m", "hxgw", "serve", "--config-dir", str(config)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    return procs.start(f"hxgw-{label}", argv, port=port, role="proxy", env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", metavar="REV_A")
    parser.add_argument("b", metavar="REV_B")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=1, help="length of each turn")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for both sides, e.g. HX_STATE_DIR=/nonexistent/x "
        "(no usage ledger) to compare the request path alone",
    )
    args = parser.parse_args()
    key = "sk-bench-" + secrets.token_urlsafe(24)
    cores = (0, 1) if (os.cpu_count() or 1) >= 2 else None
    with tempfile.TemporaryDirectory(prefix="hxgw-ab-") as tmp:
        work = Path(tmp)
        procs = Procs(work, cores=cores)
        try:
            upstream = (
                servers.start_nginx_fixed(procs)
                if servers.nginx_binary()
                else servers.start_upstream(procs)
            )
            upstream_url = f"http://127.0.0.1:{upstream.port}"
            config = servers.write_hxgw_config(work / "hxgw-config", "failover")
            sides = {
                label: start(
                    procs,
                    label,
                    export_tree(rev, work / f"tree-{label}"),
                    config,
                    key,
                    upstream_url,
                    dict(item.split("=", 1) for item in args.env),
                )
                for label, rev in (("A", args.a), ("B", args.b))
            }
            body = json.dumps(
                {
                    "model": servers.GROUP,
                    "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
                    "max_tokens": 16,
                }
            ).encode()
            script = loadgen.write_lua(work, "chat", body, key)
            load_core = procs.core("load")

            def turn(proc: Proc) -> tuple[int, float, int]:
                before = proc.cpu_seconds()
                result = loadgen.wrk(
                    f"http://127.0.0.1:{proc.port}/v1/chat/completions",
                    script,
                    args.connections,
                    args.seconds,
                    load_core,
                )
                errors = int(result.get("non_2xx", 0) + result.get("errors", 0))
                return result["requests"], proc.cpu_seconds() - before, errors

            for proc in sides.values():
                turn(proc)  # warm-up
            totals = {label: [0, 0.0, 0] for label in sides}
            ratios: list[float] = []
            for round_no in range(args.rounds):
                order = ("A", "B") if round_no % 2 == 0 else ("B", "A")
                per_request = {}
                for label in order:
                    requests, cpu, errors = turn(sides[label])
                    totals[label][0] += requests
                    totals[label][1] += cpu
                    totals[label][2] += errors
                    per_request[label] = cpu / max(requests, 1)
                ratios.append(per_request["B"] / per_request["A"])
        finally:
            procs.stop_all()
    figures = {
        label: {
            "revision": rev,
            "requests": requests,
            "cpu_us_per_request": cpu / max(requests, 1) * 1e6,
            "errors": errors,
        }
        for (label, (requests, cpu, errors)), rev in zip(
            totals.items(), (args.a, args.b), strict=True
        )
    }
    ratio = figures["B"]["cpu_us_per_request"] / figures["A"]["cpu_us_per_request"]
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    print(
        f"CPU per proxied chat request, {args.rounds} rounds of {args.seconds} s a side, "
        f"c={args.connections}, Python {sys.version.split()[0]}:"
    )
    for label, figure in figures.items():
        print(
            f"  {label} {figure['revision']:<14} {figure['cpu_us_per_request']:7.1f} µs"
            f"  ({figure['requests']:,} requests, {figure['errors']} errors)"
        )
    print(
        f"  B / A: {ratio:.3f} (per round: median {statistics.median(ratios):.3f}, "
        f"quartiles {quartiles[0]:.3f} to {quartiles[2]:.3f})"
    )
    if args.out:
        args.out.write_text(
            json.dumps({**figures, "ratio": ratio, "round_ratios": ratios}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
