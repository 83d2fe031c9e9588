"""``make eval-router``: the task classifier on the held-out set, and every routing
strategy side by side in a simulation (see ``simulate`` for the scenario).

Run as ``python -m hxgw.router.eval_router [--quick] [--markdown] [--out PATH]``.
Prints one report (plain text, or Markdown for the README), writes the same
figures as JSON to ``--out`` (default ``bench/results/eval-router.json``), and
says which of issue 3's targets are met. Exit status 0 even when a target is
missed: this is a measurement, not a test.

Three scenarios share one request stream: ``healthy`` (no model fails),
``5xx`` and ``timeout`` (one model fails from half-way on). "after onset"
figures cover only the requests that arrived from half-way on, in every
scenario, so the failing runs are compared with the same requests of the
healthy run. ``--quick`` simulates 2,000 requests instead of 20,000.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from hxgw import routing
from hxgw.classify import load_classifier
from hxgw.config import STRATEGIES
from hxgw.health import HealthBook
from hxgw.router import evaluate
from hxgw.router.classifier import TaskClassifier, load_default
from hxgw.router.dataset import DatasetError, read_examples
from hxgw.router.latency import percentile
from hxgw.router.prompt import prompt_text
from hxgw.router.simulate import (
    KEY,
    Run,
    Scenario,
    Summary,
    build_config,
    request_stream,
    simulate,
    summarize,
)
from hxgw.scoring import score_models
from hxgw.strategies import Memory

DEFAULT_OUT = Path("bench/results/eval-router.json")
FULL, QUICK = 20_000, 2_000
ML = "ml-based-routing"
FAILING = ("5xx", "timeout")


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    value: str
    met: bool


@dataclass(frozen=True, slots=True)
class Result:
    """A strategy on a scenario: over every request, and from the onset on."""

    run: Run
    whole: Summary
    after: Summary


def scenarios(requests: int, seed: int) -> dict[str, Scenario]:
    base = Scenario(requests=requests, seed=seed)
    return {
        "healthy": replace(base, failing=None),
        "5xx": base,
        "timeout": replace(base, fail_mode="timeout"),
    }


def run_all(requests: int, seed: int) -> tuple[dict[str, Scenario], dict[str, dict[str, Result]]]:
    """Every strategy on every scenario, all on the same request stream."""
    prompts = read_examples(evaluate.DEFAULT_HELDOUT)
    warm = [e.text for e in read_examples(evaluate.DEFAULT_TRAIN)]
    chosen = scenarios(requests, seed)
    stream = request_stream(chosen["healthy"], prompts)
    onset = stream[len(stream) // 2].at
    results: dict[str, dict[str, Result]] = {}
    for name, scenario in chosen.items():
        results[name] = {}
        for strategy in STRATEGIES:
            run = simulate(scenario, strategy, stream, warm)
            results[name][strategy] = Result(run, summarize(run), summarize(run, onset))
    return chosen, results


@dataclass(frozen=True, slots=True)
class Breakdown:
    """(p50, p99) wall µs of each part of an ml-based-routing decision."""

    parts: dict[str, tuple[float, float]]

    def rows(self) -> list[list[str]]:
        return [[name, f"{p50:.1f}", f"{p99:.1f}"] for name, (p50, p99) in self.parts.items()]


def _best_us(call: Callable[[], object], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best * 1e6


def _classify(classifier: TaskClassifier, body: dict[str, Any]) -> dict[str, float]:
    """What decide() does to find the task: the prompt's text, then the classifier."""
    return classifier.predict_proba(prompt_text(body))


def decide_breakdown(
    scenario: Scenario, prompts: Sequence[str], first_sight: tuple[float, float], runs: int = 5
) -> Breakdown:
    """Time ``resolve``, ``decide`` and decide's two big parts (the classifier on
    ``prompt_text``, and ``score_models``) on each prompt, caches warm, best of
    ``runs``; the rest of decide is the difference, prompt by prompt. Every model
    has a measured TTFB and one request in flight, so every scoring term is
    computed. ``first_sight`` is the classifier's (p50, p99) on words it has not
    seen since the training prompts, from ``evaluate``."""
    config = build_config(scenario, ML)
    classifier = load_classifier(config.routing.classifier)
    memory = Memory(HealthBook(config.routing.health))
    for model in scenario.models:
        health = memory.health[model.name]
        health.started()
        health.first_byte(model.ttfb)
    route = routing.resolve(config, None, None, KEY, "chat")
    weights = config.routing.scoring
    times: dict[str, list[float]] = {}
    for text in prompts:
        body = {"messages": [{"role": "user", "content": text}]}
        task = classifier.predict_proba(prompt_text(body))
        whole = _best_us(partial(routing.decide, config, route, body, memory, classifier), runs)
        parts = {
            "resolve": _best_us(partial(routing.resolve, config, None, None, KEY, "chat"), runs),
            "decide": whole,
            "  classifier (warm)": _best_us(partial(_classify, classifier, body), runs),
            "  score_models": _best_us(
                partial(score_models, route.candidates, task, memory.health, weights), runs
            ),
        }
        parts["  rest of decide"] = whole - parts["  classifier (warm)"] - parts["  score_models"]
        for name, value in parts.items():
            times.setdefault(name, []).append(value)
    spread = {n: (percentile(v, 0.5), percentile(v, 0.99)) for n, v in times.items()}
    spread["classifier, first sight"] = first_sight
    return Breakdown(spread)


def targets(report: evaluate.Report, results: dict[str, dict[str, Result]]) -> list[Target]:
    """Issue 3's targets, each with the figure it was judged on."""
    ml = [o.route_us for r in results.values() for o in r[ML].run.outcomes]
    cpu = [o.route_cpu_us for r in results.values() for o in r[ML].run.outcomes]
    p99, p99_cpu = percentile(ml, 0.99), percentile(cpu, 0.99)
    out = [
        Target("classifier macro-F1 >= 0.85", f"{report.macro_f1:.3f}", report.macro_f1 >= 0.85),
        Target(
            "routing decision p99 < 200 µs (ml-based-routing, resolve+decide, wall)",
            f"{p99:.0f} µs wall (CPU {p99_cpu:.0f} µs) over {len(ml)} decisions",
            p99 < 200,
        ),
    ]
    healthy = results["healthy"][ML].after
    for mode in FAILING:
        failing = results[mode][ML].after
        out.append(
            Target(
                f"{mode}: ml-based-routing success >= 99.9% after onset",
                f"{failing.success:.4%} of {failing.requests}",
                failing.success >= 0.999,
            )
        )
        total = failing.latency[1] / healthy.latency[1]
        ttfb = failing.ttfb[1] / healthy.ttfb[1]
        out.append(
            Target(
                f"{mode}: ml-based-routing p99 within 1.5x of healthy after onset (total, TTFB)",
                f"total {failing.latency[1]:.2f}/{healthy.latency[1]:.2f} s = {total:.2f}x, "
                f"TTFB {failing.ttfb[1]:.2f}/{healthy.ttfb[1]:.2f} s = {ttfb:.2f}x",
                total <= 1.5 and ttfb <= 1.5,
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


COLUMNS = (
    "scenario", "strategy", "match", "success", "p50 s", "p99 s", "p99 s after",
    "TTFB p99 after", "failovers/req", "route µs p50", "route µs p99", "CPU µs p99",
)  # fmt: skip


def _row(scenario: str, strategy: str, r: Result) -> list[str]:
    w, a = r.whole, r.after
    return [
        scenario, strategy, f"{w.match:.1%}", f"{w.success:.2%}", f"{w.latency[0]:.2f}",
        f"{w.latency[1]:.2f}", f"{a.latency[1]:.2f}", f"{a.ttfb[1]:.2f}", f"{w.failovers:.3f}",
        f"{w.route_us[0]:.0f}", f"{w.route_us[1]:.0f}", f"{w.route_cpu_us[1]:.0f}",
    ]  # fmt: skip


def _table(rows: list[list[str]], header: list[str], markdown: bool) -> list[str]:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return lines + ["| " + " | ".join(row) + " |" for row in rows]
    widths = [max(len(x) for x in column) for column in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*header)] + [fmt.format(*row) for row in rows]


def format_all(
    report: evaluate.Report,
    chosen: dict[str, Scenario],
    results: dict[str, dict[str, Result]],
    breakdown: Breakdown,
    checks: list[Target],
    markdown: bool,
) -> str:
    """The whole report: classifier, simulation, decide's µs, targets."""
    h = "### " if markdown else ""
    failing = chosen["5xx"]
    lines = [f"{h}Task classifier on the held-out set ({report.prompts} prompts)", ""]
    rows = [
        [label, f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}", str(s.support)]
        for label, s in report.scores.items()
    ]
    rows.append(["macro-F1", "", "", f"{report.macro_f1:.3f}", str(report.prompts)])
    lines += _table(rows, ["label", "precision", "recall", "F1", "support"], markdown)
    lines += [
        "",
        f"{h}Routing strategies on one simulated stream of {failing.requests} requests "
        f"({failing.rate:g}/s; '{failing.failing}' fails from half-way on in 5xx and timeout)",
        "",
    ]
    rows = [_row(n, s, r) for n, by in results.items() for s, r in by.items()]
    lines += _table(rows, list(COLUMNS), markdown)
    lines += ["", f"{h}Where ml-based-routing's decide() spends its µs", ""]
    lines += _table(breakdown.rows(), ["part", "p50 µs", "p99 µs"], markdown)
    lines += ["", f"{h}Targets", ""]
    mark = {True: "met", False: "MISSED"}
    rows = [[t.name, t.value, mark[t.met]] for t in checks]
    lines += _table(rows, ["target", "measured", "result"], markdown)
    return "\n".join(lines)


def to_json(
    report: evaluate.Report,
    chosen: dict[str, Scenario],
    results: dict[str, dict[str, Result]],
    breakdown: Breakdown,
    checks: list[Target],
    seconds: float,
) -> dict[str, Any]:
    def summary(s: Summary) -> dict[str, Any]:
        return asdict(s)

    return {
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "runtime_s": round(seconds, 1),
        "classifier": {
            "prompts": report.prompts,
            "macro_f1": report.macro_f1,
            "accuracy": report.accuracy,
            "labels": {label: asdict(s) for label, s in report.scores.items()},
            "confusion": report.confusion,
            "latency_us": asdict(report.latency),
        },
        "scenarios": {
            name: {
                "parameters": asdict(chosen[name]),
                "strategies": {
                    strategy: {
                        "all": summary(r.whole),
                        "after_onset": summary(r.after),
                        "failing_since": r.run.failing_since,
                        "breaker_open_at": r.run.breaker_open_at,
                        "tried_after_open": r.run.tried_after_open,
                    }
                    for strategy, r in by.items()
                },
            }
            for name, by in results.items()
        },
        "decide_breakdown_us": {k.strip(): v for k, v in breakdown.parts.items()},
        "targets": [asdict(t) for t in checks],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="eval-router", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"{QUICK} requests instead of {FULL}")
    p.add_argument("--markdown", action="store_true", help="print Markdown (for the README)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    p.add_argument("--seed", type=int, default=Scenario().seed)
    args = p.parse_args(argv)
    started = time.perf_counter()
    try:
        model = load_default()
        warm = [e.text for e in read_examples(evaluate.DEFAULT_TRAIN)]
        report = evaluate.evaluate(model, evaluate.DEFAULT_HELDOUT, warm)
        chosen, results = run_all(QUICK if args.quick else FULL, args.seed)
        heldout = [e.text for e in read_examples(evaluate.DEFAULT_HELDOUT)]
        breakdown = decide_breakdown(chosen["healthy"], heldout, report.latency.first_sight)
    except (DatasetError, OSError, ValueError) as exc:
        print(f"eval-router: {exc}", file=sys.stderr)
        return 1
    checks = targets(report, results)
    seconds = time.perf_counter() - started
    print(format_all(report, chosen, results, breakdown, checks, args.markdown))
    print(f"\n(eval took {seconds:.1f} s; JSON in {args.out})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = to_json(report, chosen, results, breakdown, checks, seconds)
    args.out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
