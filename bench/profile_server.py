#!/usr/bin/env python3
"""Where a version of hxgw spends its CPU under load: cProfile over a wrk run.

    python bench/profile_server.py REV [REV ...] [--seconds 10] [--connections 16] [--top 25]

Each REV (a git revision, `.` for the working tree, or a directory holding an
`hxgw` package; see ab.export_tree) runs `python -m cProfile -o ... -m hxgw
serve`, pinned to the proxy CPU, in front of nginx's fixed chat reply; wrk
drives it at c16 for `--seconds`, then SIGTERM stops it and cProfile writes its
stats. Printed per version: requests, then the top entries by own time
(tottime) and by cumulative time, both in µs per request, so that two versions
read side by side. cProfile's own overhead inflates every figure (a call costs
more profiled), so compare versions, not these figures with `make bench`'s.
The .prof files stay in --keep-dir for `python -m pstats`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import secrets
import sys
import tempfile
from pathlib import Path

import loadgen
import servers
from ab import export_tree
from procs import Procs, free_port


def profile_one(
    procs: Procs, label: str, tree: Path, prof: Path, args: argparse.Namespace, upstream: str
) -> int:
    key = "sk-bench-" + secrets.token_urlsafe(24)
    config = servers.write_hxgw_config(procs.workdir / f"config-{label}", "failover")
    env = {**servers.hxgw_env(key, upstream), "PYTHONPATH": str(tree)}
    port = free_port()
    argv = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "hxgw", "serve"]
    argv += ["--config-dir", str(config), "--host", "127.0.0.1", "--port", str(port)]
    proc = procs.start(f"hxgw-prof-{label}", argv, port=port, role="proxy", env=env)
    body = json.dumps(
        {
            "model": servers.GROUP,
            "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
            "max_tokens": 16,
        }
    ).encode()
    script = loadgen.write_lua(procs.workdir, f"chat-{label}", body, key)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    load = procs.core("load")
    result = loadgen.wrk(url, script, args.connections, args.seconds, load)
    procs.stop(proc, timeout=30)
    bad = result["errors"] + result["non_2xx"]
    print(
        f"{label}: {result['requests']:,} requests in {result['seconds']:.1f} s under cProfile"
        f" ({result['rps']:,.0f} req/s), {bad} errors/non-2xx",
        flush=True,
    )
    return int(result["requests"])


def top(prof: Path, requests: int, sort: str, count: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(prof), stream=out)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((tt if sort == "tottime" else ct, tt, ct, nc, filename, line, name))
    rows.sort(reverse=True)
    lines = [
        f"  total {1e6 * total / requests:.1f} µs/request profiled; top by {sort}:",
        f"  {'tottime µs/req':>14} {'cumtime µs/req':>14} {'calls/req':>9}  function",
    ]
    for _key, tt, ct, nc, filename, line, name in rows[:count]:
        where = _short(filename)
        lines.append(
            f"  {1e6 * tt / requests:14.2f} {1e6 * ct / requests:14.2f} {nc / requests:9.2f}"
            f"  {where}:{line}({name})"
        )
    return "\n".join(lines)


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/hxgw/", "lib/python3"):
        at = filename.rfind(marker)
        if at >= 0:
            return ("hxgw/" if marker == "/hxgw/" else "") + filename[at + len(marker) :]
    return filename


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revisions", nargs="+", metavar="REV")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep-dir", type=Path, default=Path(tempfile.gettempdir()) / "hxgw-prof")
    args = parser.parse_args()
    args.keep_dir.mkdir(parents=True, exist_ok=True)
    cores = (0, 1) if (os.cpu_count() or 1) >= 2 else None
    with tempfile.TemporaryDirectory(prefix="hxgw-prof-") as tmp:
        procs = Procs(Path(tmp), cores=cores)
        try:
            nginx = servers.start_nginx_fixed(procs) if servers.nginx_binary() else None
            upstream = nginx or servers.start_upstream(procs)
            url = f"http://127.0.0.1:{upstream.port}"
            done = []
            for i, rev in enumerate(args.revisions):
                label = rev.replace("/", "_") if rev != "." else "worktree"
                tree = export_tree(rev, Path(tmp) / f"tree-{i}")
                prof = args.keep_dir / f"{label}.prof"
                done.append((label, prof, profile_one(procs, label, tree, prof, args, url)))
        finally:
            procs.stop_all()
    for label, prof, requests in done:
        print(f"\n== {label} ({prof})")
        print(top(prof, requests, "tottime", args.top))
        print(top(prof, requests, "cumtime", args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
