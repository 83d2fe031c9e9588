"""Score a task classifier on the held-out set: per-label quality, and latency.

Run as ``python -m hxgw.tools.router_eval.evaluate [--model M] [HELDOUT]`` (``make
eval-router``). Latency is measured by ``latency.measure`` in three cache
states; "first sight" starts from caches warmed with the training prompts.
"""

import argparse
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hxgw.routing.learned.classifier import TaskClassifier, load_default
from hxgw.routing.learned.dataset import DatasetError, read_examples
from hxgw.tools.router_eval import latency

DATA = Path(__file__).resolve().parents[2] / "routing" / "learned" / "data"
DEFAULT_HELDOUT = DATA / "heldout.jsonl"
DEFAULT_TRAIN = DATA / "train.jsonl"


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
    latency: latency.Latency
    prompts: int
    max_chars: int


def _label_score(label: str, pairs: list[tuple[str, str]]) -> LabelScore:
    tp = sum(1 for t, p in pairs if t == label and p == label)
    predicted = sum(1 for _, p in pairs if p == label)
    actual = sum(1 for t, _ in pairs if t == label)
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return LabelScore(precision, recall, f1, actual)


def evaluate(
    model: TaskClassifier,
    heldout_path: str | Path = DEFAULT_HELDOUT,
    warm_with: Sequence[str] = (),
) -> Report:
    """Classify every held-out prompt, then time each one (see ``latency``)."""
    examples = read_examples(heldout_path)
    pairs = [(e.label, model.predict(e.text)) for e in examples]
    labels = tuple(dict.fromkeys([*model.labels, *(t for t, _ in pairs)]))
    scores = {label: _label_score(label, pairs) for label in labels}
    counts = Counter(pairs)
    return Report(
        labels=labels,
        scores=scores,
        macro_f1=statistics.fmean(s.f1 for s in scores.values()),
        accuracy=sum(1 for t, p in pairs if t == p) / len(pairs),
        confusion={t: {p: counts[t, p] for p in labels} for t in labels},
        latency=latency.measure(model, [e.text for e in examples], warm_with),
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
        f"latency: CPU µs per classification over {report.prompts} prompts "
        f"(longest {report.max_chars} chars), best of {latency.RUNS} runs each"
    )
    states = (
        ("cold (CPU caches evicted)", report.latency.cold),
        ("first sight (after training prompts)", report.latency.first_sight),
        ("warm (just classified)", report.latency.warm),
    )
    for name, (p50, p99) in states:
        lines.append(f"  {name:<37} p50 {p50:7.1f}  p99 {p99:7.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m hxgw.tools.router_eval.evaluate [--model M] [HELDOUT]``; exit 1 on bad input."""
    p = argparse.ArgumentParser(
        prog="eval-router", description="Score the task classifier on the held-out set."
    )
    p.add_argument("heldout", nargs="?", default=str(DEFAULT_HELDOUT))
    p.add_argument("--model", help="model JSON (default: the shipped model)")
    p.add_argument(
        "--warm-with",
        default=str(DEFAULT_TRAIN),
        help="JSONL whose prompts warm the caches for the first-sight timing ('' for none)",
    )
    args = p.parse_args(argv)
    try:
        model = TaskClassifier.load(args.model) if args.model else load_default()
        warm = [e.text for e in read_examples(args.warm_with)] if args.warm_with else []
        report = evaluate(model, args.heldout, warm)
    except (DatasetError, OSError, ValueError, KeyError) as exc:
        print(f"eval-router: {exc}", file=sys.stderr)
        return 1
    print(format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
