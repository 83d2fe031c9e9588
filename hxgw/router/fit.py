"""Fit the weights of a linear task classifier, in plain Python.

Both learners produce the same thing: a bias per label and, for each hashed
feature seen in training, one weight per label, so one scorer serves both.
Naive Bayes counts (a second for 2,000 prompts); logistic regression runs SGD
(tens of seconds) and usually separates mixed prompts better. Which one ships
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


def naive_bayes(vectors: Sequence[Vector], targets: Sequence[int], size: int,
                alpha: float = 0.1) -> Weights:
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


def logistic(vectors: Sequence[Vector], targets: Sequence[int], size: int, *,
             epochs: int = 12, rate: float = 0.5, l2: float = 1e-5, seed: int = 7) -> Weights:
    """Softmax regression by SGD on sqrt-normalised counts, with a decaying
    step and L2 applied to the weights each example touches."""
    rng = random.Random(seed)
    weights: dict[int, list[float]] = {}
    bias = [0.0] * size
    order = list(range(len(vectors)))
    step = 0
    for _ in range(epochs):
        rng.shuffle(order)
        for index in order:
            step += 1
            lr = rate / (1.0 + step / len(order))
            vector, target = vectors[index], targets[index]
            factor = scale("sqrt", sum(vector.values()))
            rows = [(weights.setdefault(f, [0.0] * size), n * factor) for f, n in vector.items()]
            scores = list(bias)
            for row, x in rows:
                for k in range(size):
                    scores[k] += row[k] * x
            top = max(scores)
            exps = [math.exp(s - top) for s in scores]
            total = sum(exps)
            grads = [e / total for e in exps]
            grads[target] -= 1.0
            for k in range(size):
                bias[k] -= lr * grads[k]
            shrink = 1.0 - lr * l2
            for row, x in rows:
                for k in range(size):
                    row[k] = row[k] * shrink - lr * grads[k] * x
    return Weights(bias=bias, weights=weights, norm="sqrt")


def fit(vectors: Sequence[Vector], targets: Sequence[int], size: int, method: Method) -> Weights:
    """Dispatch to the chosen learner with its default settings."""
    if method == "logistic":
        return logistic(vectors, targets, size)
    return naive_bayes(vectors, targets, size)
