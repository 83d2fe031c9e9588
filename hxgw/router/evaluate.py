"""Score a task classifier on the held-out set: quality and latency.

Why two latencies: each word's features are cached after its first sighting,
so a prompt costs most when none of its words was seen before. ``cold`` clears
every cache before each prompt (the worst case); ``warm`` times a prompt once
its words are cached (a gateway after some traffic). Real traffic lies between.
Why CPU time (``thread_time_ns``): classification does no I/O and runs on one
thread, so on a core of its own its latency is its CPU time; wall time would
also count the moments other processes held the core, and on a shared machine
that is noise about the neighbours, not about the classifier. Each figure is
the median of several runs of the prompt.
"""

import argparse
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hxgw.router import features
from hxgw.router.classifier import TaskClassifier, load_default
from hxgw.router.dataset import DatasetError, read_examples

DEFAULT_HELDOUT = Path(__file__).resolve().parent / "data" / "heldout.jsonl"
RUNS = 5


@dataclass(frozen=True, slots=True)
class LabelScore:
    """Precision, recall and F1 of one label, and how many held-out prompts had it."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class Report:
    """Everything ``main`` prints; ``confusion[true][predicted]`` counts prompts."""

    labels: tuple[str, ...]
    scores: dict[str, LabelScore]
    macro_f1: float
    accuracy: float
    confusion: dict[str, dict[str, int]]
    cold_us: tuple[float, float]
    warm_us: tuple[float, float]
    prompts: int
    max_chars: int


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _time_us(model: TaskClassifier, text: str, cold: bool) -> float:
    runs = []
    for _ in range(RUNS):
        if cold:
            model.clear_cache()
            features.word_buckets.cache_clear()
        started = time.thread_time_ns()
        model.predict_proba(text)
        runs.append((time.thread_time_ns() - started) / 1000)
    return statistics.median(runs)


def _label_score(label: str, pairs: list[tuple[str, str]]) -> LabelScore:
    tp = sum(1 for t, p in pairs if t == label and p == label)
    predicted = sum(1 for _, p in pairs if p == label)
    actual = sum(1 for t, _ in pairs if t == label)
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return LabelScore(precision, recall, f1, actual)


def evaluate(model: TaskClassifier, heldout_path: str | Path = DEFAULT_HELDOUT) -> Report:
    """Classify every held-out prompt, then time each one cold and warm."""
    examples = read_examples(heldout_path)
    pairs = [(e.label, model.predict(e.text)) for e in examples]
    labels = tuple(dict.fromkeys([*model.labels, *(t for t, _ in pairs)]))
    scores = {label: _label_score(label, pairs) for label in labels}
    counts = Counter(pairs)
    confusion = {t: {p: counts[t, p] for p in labels} for t in labels}
    cold = [_time_us(model, e.text, cold=True) for e in examples]
    warm = [_time_us(model, e.text, cold=False) for e in examples]
    return Report(
        labels=labels,
        scores=scores,
        macro_f1=statistics.fmean(s.f1 for s in scores.values()),
        accuracy=sum(1 for t, p in pairs if t == p) / len(pairs),
        confusion=confusion,
        cold_us=(_percentile(cold, 0.5), _percentile(cold, 0.99)),
        warm_us=(_percentile(warm, 0.5), _percentile(warm, 0.99)),
        prompts=len(examples),
        max_chars=max(len(e.text) for e in examples),
    )


def format_report(report: Report) -> str:
    """A plain-text table: per-label scores, macro-F1, confusion, latency."""
    width = max(map(len, report.labels))
    lines = [f"{'label':<{width}}  precision  recall     f1  support"]
    for label in report.labels:
        s = report.scores[label]
        lines.append(
            f"{label:<{width}}  {s.precision:9.3f}  {s.recall:6.3f}  {s.f1:5.3f}  {s.support:7d}"
        )
    lines.append(f"{'macro-F1':<{width}}  {report.macro_f1:.3f}   accuracy {report.accuracy:.3f}")
    lines.append("")
    short = [label[:5] for label in report.labels]
    corner = "true \\ predicted"
    lines.append(f"{corner:<{width}}  " + " ".join(f"{s:>5}" for s in short))
    for label in report.labels:
        row = report.confusion[label]
        lines.append(f"{label:<{width}}  " + " ".join(f"{row[p]:>5}" for p in report.labels))
    lines.append("")
    lines.append(
        f"latency (CPU time of one classification) over {report.prompts} prompts "
        f"(longest {report.max_chars} chars), median of {RUNS} runs each:"
    )
    lines.append(
        f"  cold (no cached words): p50 {report.cold_us[0]:.1f} µs  p99 {report.cold_us[1]:.1f} µs"
    )
    lines.append(
        f"  warm (words cached):    p50 {report.warm_us[0]:.1f} µs  p99 {report.warm_us[1]:.1f} µs"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m hxgw.router.evaluate [--model M] [HELDOUT]``; exit 1 on bad input."""
    p = argparse.ArgumentParser(prog="hxgw-eval-router", description=__doc__.split("\n")[0])
    p.add_argument("heldout", nargs="?", default=str(DEFAULT_HELDOUT))
    p.add_argument("--model", help="model JSON (default: the shipped model)")
    args = p.parse_args(argv)
    try:
        model = TaskClassifier.load(args.model) if args.model else load_default()
        report = evaluate(model, args.heldout)
    except (DatasetError, OSError, ValueError, KeyError) as exc:
        print(f"eval-router: {exc}", file=sys.stderr)
        return 1
    print(format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
