#!/usr/bin/env python3
"""What keys, limits and the usage ledger cost: one build, two configs, in alternation.

    python bench/features.py [--rounds 20] [--redis] [--only limits|ledger] [--against REV]
                             [--per-user | --team]

Side A serves with the master key (no limits) and `store.ledger: false`. Side B
serves a key from `auth.keys_file` with every limit set (rpm, tpm, requests at
once, a budget; all too high to refuse anything) and the usage ledger on
SQLite; with `--redis`, B's limits live in a real redis-server started here.
Both are pinned to the same CPU against one nginx (or aiohttp) upstream, and
wrk drives them in turns of a second, A B, B A, ... (as `bench/ab.py` does), so
a change of the machine's speed falls on both. Reported: each side's requests
per second and CPU per request, and B against A; and each side's share of its CPU
while it was driven (`cpu_busy`): a side well under 1.0 waited (on Redis, say)
rather than worked, so its requests per second fell more than its CPU rose.

With `--against REV` side A is the build at REV with the same features on: what a
change to them earned, in one run. (Two separate runs of this bench differ by more
than most such changes: on this VM the ratio of one build has ranged 0.70-0.86.)

With `--per-user` both sides serve the limited key, and B's gives each end user the same
limits again: what a request naming its end user (every request of the run names one)
pays for a second reservation. With `--team` B's key is in a team with the same limits
again: what a key in a team pays for its team's reservation.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ab
import loadgen
import servers
import yaml
from procs import Proc, Procs, free_port

LIMITS = {"rpm": 10**9, "tpm": 10**12, "max_parallel": 10**6, "budget": 10.0**9}


def configs(work: Path, key: str, only: str | None) -> tuple[Path, Path]:
    """A: no keys file, no ledger. B: one limited key, the ledger on, priced models
    (`only`: just the limits, or just the ledger)."""
    off = servers.write_hxgw_config(work / "config-off", "failover")
    (off / "gateway.yaml").write_text(servers.GATEWAY_YAML + "store:\n  ledger: false\n")
    on = servers.write_hxgw_config(work / "config-on", "failover")
    keys = on / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "bench", "key": key, **LIMITS}]}))
    keys.chmod(0o600)
    gateway = servers.GATEWAY_YAML + "auth:\n  keys_file: keys.yaml\n"
    if only == "limits":
        gateway += "store:\n  ledger: false\n"
    if only == "ledger":
        keys.write_text(yaml.safe_dump({"keys": [{"name": "bench", "key": key}]}))
    (on / "gateway.yaml").write_text(gateway)
    registry = yaml.safe_load((on / "model_registry.yaml").read_text())
    for model in registry["models"]:
        model["price"] = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
    (on / "model_registry.yaml").write_text(yaml.safe_dump(registry))
    return off, on


def per_user(on: Path, work: Path, key: str, *, team: bool = False) -> Path:
    """B's config for `--per-user`: `on`'s, its key's limits given each end user too; or
    for `--team`, given a team the key is in."""
    users = work / ("config-team" if team else "config-users")
    shutil.copytree(on, users)
    if team:
        app = {"name": "bench", "key": key, **LIMITS, "team": "bench-team"}
        doc = {"teams": [{"name": "bench-team", **LIMITS}], "keys": [app]}
    else:
        doc = {"keys": [{"name": "bench", "key": key, **LIMITS, "per_user": LIMITS}]}
    (users / "keys.yaml").write_text(yaml.safe_dump(doc))
    return users


def start_redis(procs: Procs) -> Proc:
    port = free_port()
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("bench/features.py: --redis needs redis-server (apt-get install redis-server)")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return procs.start("redis", argv, port=port, role="load")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=1)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--redis", action="store_true", help="B's limits in a real Redis")
    parser.add_argument("--only", choices=("limits", "ledger"), help="B with just one of them")
    parser.add_argument("--against", metavar="REV",
                        help="A: the build at REV with the features on, as B has them")  # fmt: skip
    parser.add_argument("--per-user", action="store_true",
                        help="A: a limited key; B: its limits for each end user too")  # fmt: skip
    parser.add_argument("--team", action="store_true",
                        help="A: a limited key; B: the same key in a team with its limits")  # fmt: skip
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    master, limited = ("sk-bench-" + secrets.token_urlsafe(24) for _ in range(2))
    cores = (0, 1) if (os.cpu_count() or 1) >= 2 else None
    with tempfile.TemporaryDirectory(prefix="hxgw-features-") as tmp:
        work = Path(tmp)
        procs = Procs(work, cores=cores)
        try:
            upstream = (servers.start_nginx_fixed(procs) if servers.nginx_binary()
                        else servers.start_upstream(procs))  # fmt: skip
            url = f"http://127.0.0.1:{upstream.port}"
            off, on = configs(work, limited, args.only)
            tree = ab.export_tree(".", work / "tree")
            extra = {"REDIS_URL": f"redis://127.0.0.1:{start_redis(procs).port}/0"} if args.redis else {}
            if args.per_user or args.team:
                on, side_a = per_user(on, work, limited, team=args.team), (
                    ab.start(procs, "key", tree, on, master, url, extra), limited)
            elif args.against:  # A: another build, with the features on as B has them
                old = ab.export_tree(args.against, work / "against")
                side_a = (ab.start(procs, "against", old, on, master, url, extra), limited)
            else:
                side_a = (ab.start(procs, "off", tree, off, master, url), master)
            sides = {"A": side_a, "B": (ab.start(procs, "on", tree, on, master, url, extra), limited)}
            chat = {"model": servers.GROUP, "max_tokens": 16, "messages": [
                {"role": "user", "content": "Say hello in one short sentence."}]}
            body = json.dumps(chat | ({"user": "bench-user"} if args.per_user else {})).encode()
            scripts = {label: loadgen.write_lua(work, f"chat-{label}", body, key)
                       for label, (_, key) in sides.items()}  # fmt: skip

            busy = {label: [0.0, 0.0] for label in sides}  # CPU seconds, wall seconds

            def turn(label: str) -> tuple[int, float, int]:
                proc = sides[label][0]
                before, started = proc.cpu_seconds(), time.monotonic()
                result = loadgen.wrk(f"http://127.0.0.1:{proc.port}/v1/chat/completions",
                                     scripts[label], args.connections, args.seconds,
                                     procs.core("load"))  # fmt: skip
                errors = int(result.get("non_2xx", 0) + result.get("errors", 0))
                cpu = proc.cpu_seconds() - before
                busy[label][0] += cpu
                busy[label][1] += time.monotonic() - started
                return result["requests"], cpu, errors

            for label in sides:
                turn(label)
            totals = {label: [0, 0.0, 0] for label in sides}
            ratios = []
            for round_no in range(args.rounds):
                per = {}
                for label in ("A", "B") if round_no % 2 == 0 else ("B", "A"):
                    requests, cpu, errors = turn(label)
                    totals[label] = [totals[label][0] + requests, totals[label][1] + cpu,
                                     totals[label][2] + errors]  # fmt: skip
                    per[label] = cpu / max(requests, 1)
                ratios.append(per["B"] / per["A"])
            time.sleep(1.5)  # the ledger's last batch
            rows = _ledger_rows(sides["B"][0])
        finally:
            procs.stop_all()
    seconds = args.rounds * args.seconds
    figures = {label: {"requests_per_second": r / seconds, "cpu_us_per_request": c / max(r, 1) * 1e6,
                       "cpu_busy": busy[label][0] / max(busy[label][1], 1e-9),
                       "errors": e} for label, (r, c, e) in totals.items()}  # fmt: skip
    result = {
        "store": "redis" if args.redis else "memory",
        "only": args.only,
        "against": args.against,
        "per_user": args.per_user,
        "team": args.team,
        "off": figures["A"],
        "on": figures["B"],
        "req_per_s_on_over_off": figures["B"]["requests_per_second"] / figures["A"]["requests_per_second"],
        "cpu_on_over_off": figures["B"]["cpu_us_per_request"] / figures["A"]["cpu_us_per_request"],
        "cpu_ratio_quartiles": statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios,
        "ledger_rows_written": rows,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _ledger_rows(proc: Proc) -> int | None:
    """How many rows side B's ledger wrote: proof it was on."""
    state = _state_dir(proc)
    if state is None:
        return None
    try:
        with sqlite3.connect(Path(state) / "hxgw.db") as connection:
            return int(connection.execute("SELECT COUNT(*) FROM usage_ledger").fetchone()[0])
    except sqlite3.Error:
        return None  # no ledger (--only limits)


def _state_dir(proc: Proc) -> str | None:
    environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
    for entry in environ:
        if entry.startswith(b"HX_STATE_DIR="):
            return entry.split(b"=", 1)[1].decode()
    return None


if __name__ == "__main__":
    sys.exit(main())
