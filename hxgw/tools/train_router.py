"""``hxgw train-router DATA.jsonl -o MODEL.json``: fit a task classifier.

Why validate before training: a typo on line 1,812 of a hand-made dataset
should cost one re-run, so the error names the file and line and exits 1.
"""

import argparse
import os
import sys
import time
from collections import Counter

from hxgw.routing.learned.classifier import TaskClassifier
from hxgw.routing.learned.dataset import DatasetError, read_examples
from hxgw.routing.learned.fit import Method

METHODS: tuple[Method, ...] = ("naive-bayes", "logistic")
FEW = 20
"""Fewer examples of a label than this, and the fitted probabilities stay near uniform
(4 examples: the training sentence itself comes back at p=0.34): said, not refused."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `hxgw train-router`, on the parser the CLI gives."""
    p.add_argument("data", help='JSONL file, one {"text": ..., "label": ...} per line')
    p.add_argument("-o", "--output", required=True, help="where to write the model (JSON)")
    p.add_argument(
        "--method",
        choices=METHODS,
        default="naive-bayes",
        help="learner (default: naive-bayes, see docs/router-evaluation.md)",
    )


def run(args: argparse.Namespace) -> int:
    """Validate, train, save; print per-label counts and timing. Exit 0 or 1."""
    try:
        examples = read_examples(args.data)
    except OSError as exc:
        print(f"hxgw train-router: cannot read {args.data}: {exc.strerror}", file=sys.stderr)
        return 1
    except (DatasetError, UnicodeDecodeError) as exc:
        print(f"hxgw train-router: {exc}", file=sys.stderr)
        return 1
    counts = Counter(e.label for e in examples)
    if len(counts) < 2:
        print(
            f"hxgw train-router: {args.data}: need at least two labels, found {len(counts)}",
            file=sys.stderr,
        )
        return 1
    few = sorted(label for label, count in counts.items() if count < FEW)
    if few:
        print(
            f"hxgw train-router: warning: fewer than {FEW} examples of {', '.join(few)}: the "
            "model's probabilities will stay near even, and its routing say little (the "
            "bundled set has about 300 a label)",
            file=sys.stderr,
        )
    started = time.perf_counter()
    model = TaskClassifier.train(examples, method=args.method)
    elapsed = time.perf_counter() - started
    try:
        model.save(args.output)
    except OSError as exc:
        print(f"hxgw train-router: cannot write {args.output}: {exc}", file=sys.stderr)
        return 1
    width = max(map(len, counts))
    for label in model.labels:
        print(f"{label:<{width}}  {counts[label]:>6}")
    print(f"{'total':<{width}}  {len(examples):>6}")
    size = os.path.getsize(args.output)
    print(
        f"trained {args.method} in {elapsed:.2f} s; {len(model.weights)} features; "
        f"wrote {args.output} ({size / 1e6:.2f} MB)"
    )
    return 0
