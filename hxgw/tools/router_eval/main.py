"""``make eval-router``: the task classifier on the held-out set, and every routing
strategy side by side in a simulation (see ``simulate`` for the scenario).

Run as ``python -m hxgw.tools.router_eval.main [--quick] [--markdown] [--out PATH]``.
Prints one report (plain text, or Markdown for docs/router-evaluation.md), writes the same
figures as JSON to ``--out`` (default ``bench/results/eval-router.json``), and
says which of issue 3's targets are met. Exit status 0 even when a target is
missed: this is a measurement, not a test.

Routing overhead is measured both as wall time (``perf_counter``) and as the
thread's CPU time (``thread_time_ns``) around ``resolve`` + ``decide``. The
table shows both; the "p99 < 200 µs on one core" target is judged on CPU
time, because on a shared machine wall time also counts the moments other
processes held the core (the classifier's own timing, ``latency.py``, reasons
the same way).

Three scenarios share one request stream: ``healthy`` (no model fails),
``5xx`` and ``timeout`` (one model fails from half-way on). "after onset"
figures cover only the requests that arrived from half-way on, in every
scenario, so the failing runs are compared with the same requests of the
healthy run. ``--quick`` simulates 2,000 requests instead of 20,000.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import structlog

from hxgw.config import STRATEGIES
from hxgw.routing import decision as routing
from hxgw.routing.learned.classifier import TaskClassifier, load_default
from hxgw.routing.learned.dataset import DatasetError, read_examples
from hxgw.routing.scoring import rank
from hxgw.tools.router_eval import evaluate
from hxgw.tools.router_eval.latency import percentile
from hxgw.tools.router_eval.report import (
    EARLY,
    FAILING,
    ML,
    Breakdown,
    Result,
    Target,
    format_all,
    to_json,
)
from hxgw.tools.router_eval.simulate import (
    Request,
    Scenario,
    request_stream,
    simulate,
)
from hxgw.tools.router_eval.summary import summarize

DEFAULT_OUT = Path("bench/results/eval-router.json")
FULL, QUICK = 20_000, 2_000


def scenarios(requests: int, seed: int) -> dict[str, Scenario]:
    """The default scenario healthy, and failing with 5xx and with timeouts."""
    base = Scenario(requests=requests, seed=seed)
    return {
        "healthy": replace(base, failing=None),
        "5xx": base,
        "timeout": replace(base, fail_mode="timeout"),
    }


def run_all(
    chosen: dict[str, Scenario], stream: list[Request], warm: list[str]
) -> dict[str, dict[str, Result]]:
    """Every strategy on every scenario, all on the same request stream."""
    onset = stream[len(stream) // 2].at
    results: dict[str, dict[str, Result]] = {}
    for name, scenario in chosen.items():
        results[name] = {}
        for strategy in STRATEGIES:
            run = simulate(scenario, strategy, stream, warm)
            early = summarize(run, onset, onset + EARLY)
            results[name][strategy] = Result(run, summarize(run), summarize(run, onset), early)
    return results


def _timed(call: Callable[..., Any], into: list[float]) -> Callable[..., Any]:
    def timed(*args: Any) -> Any:
        started = time.thread_time_ns()
        try:
            return call(*args)
        finally:
            into.append((time.thread_time_ns() - started) / 1e3)

    return timed


def decide_breakdown(scenario: Scenario, stream: list[Request], warm: list[str]) -> Breakdown:
    """Run ml-based-routing on ``scenario`` once more, with the classifier and
    ``rank`` (the scoring) timed inside each decision (~1 µs of timing added to each):
    where a decision's CPU time goes while requests interleave, as in a gateway.
    The rest is resolve, prompt_text, the circuit check and building the Decision.
    "First sight" requests carry a prompt not seen before in the stream."""
    classify: list[float] = []
    scoring: list[float] = []
    proba = TaskClassifier.predict_proba
    with (
        mock.patch.object(TaskClassifier, "predict_proba", _timed(proba, classify)),
        mock.patch.object(routing, "rank", _timed(rank, scoring)),
    ):
        run = simulate(scenario, ML, stream, warm)
    classify = classify[len(warm) :]
    total = [o.route_cpu_us for o in run.outcomes]
    rest = [t - c - s for t, c, s in zip(total, classify, scoring, strict=True)]
    seen: set[str] = set()
    first: list[float] = []
    again: list[float] = []
    for request, spent in zip(stream, total, strict=True):
        (again if request.text in seen else first).append(spent)
        seen.add(request.text)
    parts = {
        "resolve + decide": total,
        "  classifier (prompt -> task probabilities)": classify,
        "  scoring (rank the candidates)": scoring,
        "  rest (resolve, prompt_text, circuit check, ...)": rest,
        f"resolve + decide, first sight of a prompt ({len(first)})": first,
        f"resolve + decide, prompt seen before ({len(again)})": again,
    }
    spread = {n: (percentile(v, 0.5), percentile(v, 0.99)) for n, v in parts.items()}
    return Breakdown(len(total), spread)


def _first_sight(results: dict[str, dict[str, Result]], stream: list[Request]) -> list[float]:
    out: list[float] = []
    for by in results.values():
        seen: set[str] = set()
        for request, outcome in zip(stream, by[ML].run.outcomes, strict=True):
            if request.text not in seen:
                out.append(outcome.route_cpu_us)
            seen.add(request.text)
    return out


def targets(
    report: evaluate.Report, results: dict[str, dict[str, Result]], stream: list[Request]
) -> list[Target]:
    """Issue 3's targets, each with the figure it was judged on, then stricter
    extra checks (``extra=True``) that are not in the issue."""
    ml = [o.route_us for r in results.values() for o in r[ML].run.outcomes]
    cpu = [o.route_cpu_us for r in results.values() for o in r[ML].run.outcomes]
    first = _first_sight(results, stream)
    p99_wall, p99, p99_first = (percentile(v, 0.99) for v in (ml, cpu, first))
    out = [
        Target("classifier macro-F1 >= 0.85", f"{report.macro_f1:.3f}", report.macro_f1 >= 0.85),
        Target(
            "ml-based-routing decision (resolve + decide) p99 < 200 µs of one core (CPU)",
            f"{p99:.0f} µs CPU (wall {p99_wall:.0f} µs), {len(ml)} decisions",
            p99 < 200,
        ),
        Target(
            "  the same, first sight of each prompt only",
            f"{p99_first:.0f} µs CPU, {len(first)} decisions",
            p99_first < 200,
            extra=True,
        ),
    ]
    healthy, early_healthy = results["healthy"][ML].after, results["healthy"][ML].early
    for mode in FAILING:
        failing, early = results[mode][ML].after, results[mode][ML].early
        out.append(
            Target(
                f"{mode}: ml-based-routing success >= 99.9% after onset",
                f"{failing.success:.3%} of {failing.requests}",
                failing.success >= 0.999,
            )
        )
        for name, now, then, extra in (
            ("p99 latency", failing.latency[1], healthy.latency[1], False),
            ("  p99 TTFB", failing.ttfb[1], healthy.ttfb[1], True),
            (
                f"  p99 latency, first {EARLY:.0f} s",
                early.latency[1],
                early_healthy.latency[1],
                True,
            ),
            (f"  p99 TTFB, first {EARLY:.0f} s", early.ttfb[1], early_healthy.ttfb[1], True),
        ):
            out.append(
                Target(
                    f"{mode}: ml-based-routing {name.strip()} after onset within 1.5x of healthy"
                    if not extra
                    else f"  {mode}: {name.strip()} after onset within 1.5x of healthy",
                    f"{now:.2f} s vs {then:.2f} s = {now / then:.2f}x",
                    now <= 1.5 * then,
                    extra=extra,
                )
            )
    for name, by_strategy in results.items():
        match = {s: r.whole.match for s, r in by_strategy.items()}
        out.append(
            Target(
                f"{name}: ml-based-routing beats failover and round-robin on match",
                f"{match[ML]:.1%} vs {match['failover']:.1%} and {match['round-robin']:.1%}",
                match[ML] > max(match["failover"], match["round-robin"]),
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m hxgw.tools.router_eval.main [--quick] [--markdown] [--out PATH]``."""
    p = argparse.ArgumentParser(prog="eval-router", description="Evaluate the router.")
    p.add_argument("--quick", action="store_true", help=f"{QUICK} requests instead of {FULL}")
    p.add_argument(
        "--markdown", action="store_true", help="print Markdown (for docs/router-evaluation.md)"
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    p.add_argument("--seed", type=int, default=Scenario().seed)
    args = p.parse_args(argv)
    # The simulated models' breakers open and close by the thousand, each a log line
    # of the gateway's; what they did is in the report.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    started = time.perf_counter()
    try:
        model = load_default()
        warm = [e.text for e in read_examples(evaluate.DEFAULT_TRAIN)]
        report = evaluate.evaluate(model, evaluate.DEFAULT_HELDOUT, warm)
        chosen = scenarios(QUICK if args.quick else FULL, args.seed)
        stream = request_stream(chosen["healthy"], read_examples(evaluate.DEFAULT_HELDOUT))
        results = run_all(chosen, stream, warm)
        breakdown = decide_breakdown(chosen["healthy"], stream, warm)
    except (DatasetError, OSError, ValueError) as exc:
        print(f"eval-router: {exc}", file=sys.stderr)
        return 1
    checks = targets(report, results, stream)
    seconds = time.perf_counter() - started
    print(format_all(report, chosen, results, breakdown, checks, args.markdown))
    print(f"\n(eval took {seconds:.1f} s; JSON in {args.out})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = to_json(report, chosen, results, breakdown, checks, seconds)
    args.out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
