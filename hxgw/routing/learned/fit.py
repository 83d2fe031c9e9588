"""Fit the weights of a linear task classifier, in plain Python.

Both learners produce the same thing: a bias per label and, for each hashed
feature seen in training, one weight per label, so one scorer serves both.
Naive Bayes counts (a second for 2,000 prompts); logistic regression runs SGD
(a few seconds) and usually separates mixed prompts better. Which one ships
is decided by ``evaluate`` on the held-out set, not here.
"""

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Method = Literal["naive-bayes", "logistic"]
Vector = Counter[int]
_QUIET = 1e-3


@dataclass(frozen=True, slots=True, kw_only=True)
class Weights:
    """What a learner returns; ``norm`` says how the feature sum is scaled."""

    bias: list[float]
    weights: dict[int, list[float]]
    norm: Literal["none", "sqrt"]


def scale(norm: str, count: int) -> float:
    """The factor applied to a prompt's feature sum: 1, or 1/sqrt(#features) so
    that a pasted page does not shout down the one-line instruction above it."""
    return 1.0 / math.sqrt(count) if norm == "sqrt" and count else 1.0


def naive_bayes(
    vectors: Sequence[Vector], targets: Sequence[int], size: int, alpha: float = 0.1
) -> Weights:
    """Multinomial naive Bayes with Laplace smoothing ``alpha``; per-feature
    log-likelihoods are centred across labels (softmax cannot tell) so the
    stored weights read directly as evidence for or against each label."""
    counts: dict[int, list[float]] = {}
    totals = [0.0] * size
    docs = [0] * size
    for vector, target in zip(vectors, targets, strict=True):
        docs[target] += 1
        for feature, n in vector.items():
            counts.setdefault(feature, [0.0] * size)[target] += n
            totals[target] += n
    vocab = len(counts)
    denominators = [math.log(t + alpha * vocab) for t in totals]
    weights: dict[int, list[float]] = {}
    for feature, row in counts.items():
        logs = [math.log(n + alpha) - d for n, d in zip(row, denominators, strict=True)]
        mean = sum(logs) / size
        weights[feature] = [v - mean for v in logs]
    n_docs = sum(docs)
    bias = [math.log((d + 1) / (n_docs + size)) for d in docs]
    return Weights(bias=bias, weights=weights, norm="none")


def logistic(
    vectors: Sequence[Vector],
    targets: Sequence[int],
    size: int,
    *,
    epochs: int = 12,
    rate: float = 1.0,
    seed: int = 7,
) -> Weights:
    """Softmax regression by SGD on sqrt-normalised counts with a decaying step.
    Why so shaped: one weight column per label lets ``sum(map(...))`` score in
    C, and labels whose gradient is ~0 (most, once a prompt is learned) are not
    updated at all; that makes plain Python fast enough (seconds, not minutes).
    Few epochs and the decaying step stand in for L2 regularisation."""
    rng = random.Random(seed)
    known = {feature: 0.0 for vector in vectors for feature in vector}
    columns = [dict(known) for _ in range(size)]
    bias = [0.0] * size
    prepared = [(list(v.elements()), scale("sqrt", sum(v.values()))) for v in vectors]
    order = list(range(len(prepared)))
    step = 0
    for _ in range(epochs):
        rng.shuffle(order)
        for index in order:
            step += 1
            lr = rate / (1.0 + step / len(order))
            feats, factor = prepared[index]
            scores = [
                b + factor * sum(map(c.__getitem__, feats))
                for b, c in zip(bias, columns, strict=True)
            ]
            top = max(scores)
            exps = [math.exp(s - top) for s in scores]
            total = sum(exps)
            for k, e in enumerate(exps):
                grad = e / total - (k == targets[index])
                if -_QUIET < grad < _QUIET:
                    continue
                bias[k] -= lr * grad
                delta = lr * grad * factor
                column = columns[k]
                for feature in feats:
                    column[feature] -= delta
    weights = {f: [column[f] for column in columns] for f in known}
    return Weights(bias=bias, weights=weights, norm="sqrt")


def log_loss(scores: Sequence[Sequence[float]], targets: Sequence[int], temp: float) -> float:
    """Mean negative log-likelihood of softmax(scores / temp)."""
    total = 0.0
    for row, target in zip(scores, targets, strict=True):
        scaled = [s / temp for s in row]
        top = max(scaled)
        total += top + math.log(sum(math.exp(s - top) for s in scaled)) - scaled[target]
    return total / max(len(targets), 1)


def temperature(scores: Sequence[Sequence[float]], targets: Sequence[int]) -> float:
    """The divisor of the scores that makes out-of-fold probabilities honest.
    Naive Bayes counts every correlated n-gram as independent evidence, so its
    raw odds are absurd (0.999999 where 0.8 is right); the router shows and
    weighs those probabilities, so they are tempered. Argmax is unchanged."""
    grid: list[float] = [1.25**i for i in range(30)]
    best = min(grid, key=lambda t: log_loss(scores, targets, t))
    return round(best, 3)


def fit(vectors: Sequence[Vector], targets: Sequence[int], size: int, method: Method) -> Weights:
    """Dispatch to the chosen learner with its default settings."""
    if method == "logistic":
        return logistic(vectors, targets, size)
    return naive_bayes(vectors, targets, size)
