"""The run: the cases in their order, each a function of the Bench (chat_cases,
stream_cases, routing_case), and the file the results are written to."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import chat_cases
import routing_case
import servers
import stream_cases
from harness import Bench
from settings import chat_body


def run_cases(bench: Bench) -> dict[str, Any]:
    upstream = servers.start_upstream(bench.procs)
    fixed = servers.start_nginx_fixed(bench.procs) if bench.nginx else None
    chat_upstream = chat_cases.choose_upstream(bench, upstream, fixed)
    chat_cases.case_chat(bench, chat_upstream)
    stream_cases.case_stream_and_embeddings(bench, upstream)
    stream_cases.case_slow_streams(bench, upstream)
    chat_cases.case_workers(bench, chat_upstream)
    if bench.old:
        chat_cases.ab_cpu(bench, chat_upstream)
    bench.results["routing"] = routing_case.run(
        bench.config_dir, bench.key, bench.s.routing_iterations, chat_body()
    )
    bench.say(
        "routing: " + ", ".join(f"{r['name']} {r['us']}" for r in bench.results["routing"]["rows"])
    )
    bench.results["errors"] = bench.errors
    return bench.results


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
