"""The evaluation's figures and report: the targets, each strategy's result on each
scenario, tables in plain text or Markdown, and the same figures as JSON."""

from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass
from typing import Any

from hxgw.tools.router_eval import evaluate, latency
from hxgw.tools.router_eval.scenario import Run, Scenario
from hxgw.tools.router_eval.summary import Summary

ML = "ml-based-routing"
FAILING = ("5xx", "timeout")
EARLY = 300.0
"""Seconds after the onset that the "first 300 s" extra checks cover."""


@dataclass(frozen=True, slots=True)
class Target:
    """One target: what it asks, the figure it was judged on, and the verdict."""

    name: str
    value: str
    met: bool
    extra: bool = False


@dataclass(frozen=True, slots=True)
class Result:
    """A strategy on a scenario: over every request, from the onset on, and over
    the first ``EARLY`` seconds from the onset."""

    run: Run
    whole: Summary
    after: Summary
    early: Summary


@dataclass(frozen=True, slots=True)
class Breakdown:
    """(p50, p99) CPU µs of each part of an ml-based-routing decision."""

    decisions: int
    parts: dict[str, tuple[float, float]]

    def rows(self) -> list[list[str]]:
        return [[name, f"{p50:.0f}", f"{p99:.0f}"] for name, (p50, p99) in self.parts.items()]


COLUMNS = (
    "scenario",
    "strategy",
    "match",
    "success",
    "p50 s",
    "p99 s",
    "p99 s after",
    "TTFB p99 after",
    "failovers/req",
    "route µs p50",
    "route µs p99",
    "CPU µs p99",
)


def _row(scenario: str, strategy: str, r: Result) -> list[str]:
    w, a = r.whole, r.after
    return [
        scenario,
        strategy,
        f"{w.match:.1%}",
        f"{w.success:.2%}",
        f"{w.latency[0]:.2f}",
        f"{w.latency[1]:.2f}",
        f"{a.latency[1]:.2f}",
        f"{a.ttfb[1]:.2f}",
        f"{w.failovers:.3f}",
        f"{w.route_us[0]:.0f}",
        f"{w.route_us[1]:.0f}",
        f"{w.route_cpu_us[1]:.0f}",
    ]


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
    cold, first, warm = report.latency.cold, report.latency.first_sight, report.latency.warm
    lines += [
        "",
        f"Classification alone, CPU µs p50/p99, best of {latency.RUNS}: cold "
        f"{cold[0]:.0f}/{cold[1]:.0f}, first sight {first[0]:.0f}/{first[1]:.0f}, "
        f"warm {warm[0]:.0f}/{warm[1]:.0f}.",
        "",
        f"{h}Routing strategies on one simulated stream of {failing.requests} requests "
        f"({failing.rate:g}/s; in 5xx and timeout '{failing.failing}' fails from half-way on)",
        "",
    ]
    rows = [_row(n, s, r) for n, by in results.items() for s, r in by.items()]
    lines += _table(rows, list(COLUMNS), markdown)
    lines += [
        "",
        "match: share of all requests served by a model specialized in the prompt's true task. "
        "Latencies: arrival to last byte (TTFB: to first byte) of the requests that succeeded, "
        "time lost on failed attempts included; 'after': requests from the onset on. "
        "route µs: wall time of resolve + decide.",
        "",
        f"{h}Where an ml-based-routing decision's µs go "
        f"(healthy run, {breakdown.decisions} decisions, CPU)",
        "",
    ]
    lines += _table(breakdown.rows(), ["part", "p50 µs", "p99 µs"], markdown)
    lines += ["", f"{h}Targets (issue 3; 'extra' rows are stricter checks of our own)", ""]
    rows = [
        [t.name, t.value, "extra" if t.extra else "issue", "met" if t.met else "MISSED"]
        for t in checks
    ]
    lines += _table(rows, ["target", "measured", "kind", "result"], markdown)
    return "\n".join(lines)


def to_json(
    report: evaluate.Report,
    chosen: dict[str, Scenario],
    results: dict[str, dict[str, Result]],
    breakdown: Breakdown,
    checks: list[Target],
    seconds: float,
) -> dict[str, Any]:
    """Everything printed, and the per-model shares and breaker figures besides."""

    def entry(r: Result) -> dict[str, Any]:
        return {
            "all": asdict(r.whole),
            "after_onset": asdict(r.after),
            f"first_{EARLY:.0f}s_after_onset": asdict(r.early),
            "failing_since": r.run.failing_since,
            "breaker_open_at": r.run.breaker_open_at,
            "tried_failing_after_open": r.run.tried_after_open,
        }

    return {
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "runtime_s": round(seconds, 1),
        "classifier": {
            "prompts": report.prompts,
            "macro_f1": report.macro_f1,
            "accuracy": report.accuracy,
            "labels": {label: asdict(s) for label, s in report.scores.items()},
            "confusion": report.confusion,
            "cpu_us_p50_p99": asdict(report.latency),
        },
        "scenarios": {
            name: {
                "parameters": asdict(chosen[name]),
                "strategies": {strategy: entry(r) for strategy, r in by.items()},
            }
            for name, by in results.items()
        },
        "decide_breakdown_us_p50_p99": {k.strip(): v for k, v in breakdown.parts.items()},
        "targets": [asdict(t) for t in checks],
    }
