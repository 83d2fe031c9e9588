"""The task classifier: which kind of work a prompt asks for, with odds.

A linear model over hashed features (see ``features``): a bias per label plus,
per feature bucket, one weight per label. Linear keeps it explainable (each
feature's share of a decision is its weight) and cheap: scoring is a sum.
Why a table of every bucket: scoring looks up each of a prompt's features;
a list indexed by bucket, holding each bucket's packed weights (``packing``)
or one shared zero, is one pointer away, where a dict lookup also hashes,
probes and compares its key. On a core whose caches the rest of the gateway
keeps evicting, each of those extra memory touches costs more than the sum.
Why a cache of words: a word's own features (its bucket and its prefix's) cost
two crc32 calls and two lookups, and words repeat across requests; so each
word's summed weights are kept, and its bucket (for pairs and edges), and a
known word costs one dict lookup. Up to ``_CACHE_WORDS`` words, then it starts over;
a plain dict, meant for one event-loop thread like the rest of the gateway.
A word never seen costs about a fifth more than without the cache (measured
by ``latency``'s cold and first-sight states and eval_router's first sight).
"""

import functools
import importlib.resources
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hxgw.routing.learned import features, fit, markers, packing
from hxgw.routing.learned.dataset import Example
from hxgw.routing.learned.prompt import prompt_text

__all__ = ["LABELS", "TaskClassifier", "load_default", "prompt_text"]

LABELS = ("coding", "analysis", "math", "writing", "chat", "summarization", "translation")
FORMAT = "hxgw-task-classifier/1"
DEFAULT_MODEL = "default_model.json"
_DIGITS = 4
_FOLDS = 3
_CACHE_WORDS = 1 << 15


def _ordered_labels(seen: Iterable[str]) -> tuple[str, ...]:
    found = set(seen)
    return tuple(x for x in LABELS if x in found) + tuple(sorted(found - set(LABELS)))


class TaskClassifier:
    """A trained classifier; build one with ``train`` or ``load``."""

    def __init__(
        self,
        *,
        labels: Sequence[str],
        bias: Sequence[float],
        weights: dict[int, list[float]],
        norm: str = "none",
        method: str = "naive-bayes",
        temperature: float = 1.0,
    ) -> None:
        self.labels = tuple(labels)
        self.bias = list(bias)
        self.weights = weights
        self.norm = norm
        self.method = method
        self.temperature = temperature
        self._size = len(self.labels)
        self._zero = packing.pack([0.0] * self._size)
        self._table = [self._zero] * features.N_BUCKETS
        for b, row in weights.items():
            self._table[b] = packing.pack(row)
        self._unpack = packing.unpacker(self._size)
        self._words: dict[bytes, int] = {}
        self._units: dict[bytes, int] = {}

    @classmethod
    def train(
        cls,
        examples: Iterable[Example],
        method: fit.Method = "naive-bayes",
        calibrate: bool | None = None,
    ) -> "TaskClassifier":
        """Learn from labelled prompts. ``calibrate`` (default: for naive Bayes)
        fits a temperature on 3-fold out-of-fold scores. Weights are rounded now
        so that a saved and re-loaded model predicts exactly what this one does."""
        data = list(examples)
        labels = _ordered_labels(e.label for e in data)
        index = {label: i for i, label in enumerate(labels)}
        targets = [index[e.label] for e in data]
        vectors = [Counter(features.extract(e.text)) for e in data]
        model = cls._fit(labels, vectors, targets, method)
        if calibrate if calibrate is not None else method == "naive-bayes":
            scores: list[list[float]] = []
            held: list[int] = []
            for fold in range(_FOLDS):
                rest = [i for i in range(len(data)) if i % _FOLDS != fold]
                part = cls._fit(
                    labels, [vectors[i] for i in rest], [targets[i] for i in rest], method
                )
                mine = range(fold, len(data), _FOLDS)
                scores.extend(part.scores(data[i].text) for i in mine)
                held.extend(targets[i] for i in mine)
            model.temperature = fit.temperature(scores, held)
        return model

    @classmethod
    def _fit(
        cls,
        labels: tuple[str, ...],
        vectors: Sequence[fit.Vector],
        targets: Sequence[int],
        method: fit.Method,
    ) -> "TaskClassifier":
        found = fit.fit(vectors, targets, len(labels), method)
        weights = {b: [round(v, _DIGITS) for v in row] for b, row in found.weights.items()}
        return cls(
            labels=labels,
            bias=[round(v, _DIGITS) for v in found.bias],
            weights=weights,
            norm=found.norm,
            method=method,
        )

    def scores(self, text: str) -> list[float]:
        """Unnormalised log-odds per label, in ``labels`` order: the sum over
        ``features.extract(text)``, with each word's own features from the cache."""
        text = features.truncate(text)
        tokens = features.words(text)
        known = self._words.__getitem__
        try:
            own = sum(map(known, tokens))
        except KeyError:
            self._learn_words(tokens)
            own = sum(map(known, tokens))
        table, units = self._table, self._units
        head, tail = features.ends(tokens)
        first = [units[w] for w in head]
        last = first if tail is head else [units[w] for w in tail]
        others = [table[b] for b in features.phrase_buckets(first, last) + markers.buckets(text)]
        count = len(tokens) + len(others)
        sums = self._unpack(own + sum(others), count)
        factor = 1.0
        if self.norm != "none":
            factor = fit.scale(self.norm, count + sum(map(features.has_prefix, tokens)))
        temperature = self.temperature
        return [(b + s * factor) / temperature for b, s in zip(self.bias, sums, strict=True)]

    def _learn_words(self, tokens: list[bytes]) -> None:
        """Cache each new word's bucket and packed weights (its own, plus its
        prefix's: a sum of two packed vectors carries two offsets, so one is taken
        off, and every cached value, like every table entry, carries one)."""
        if len(self._words) >= _CACHE_WORDS:
            self.clear_cache()
        cached, table, zero = self._words, self._table, self._zero
        new = list(set(tokens).difference(cached))
        units = features.unit_buckets(new)
        cached.update(zip(new, [table[u] for u in units], strict=True))
        self._units.update(zip(new, units, strict=True))
        long = [w for w in new if len(w) > features.PREFIX_BYTES]
        for word, prefix in zip(long, features.prefix_buckets(long), strict=True):
            cached[word] += table[prefix] - zero

    def clear_cache(self) -> None:
        """Forget every cached word (for cold-start timing, or to bound memory)."""
        self._words.clear()
        self._units.clear()

    def predict_proba(self, text: str) -> dict[str, float]:
        """Probability of each label; the values sum to 1."""
        scores = self.scores(text)
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        total = sum(exps)
        return dict(zip(self.labels, [e / total for e in exps], strict=True))

    def predict(self, text: str) -> str:
        """The most probable label."""
        scores = self.scores(text)
        return self.labels[scores.index(max(scores))]

    def top_features(self, text: str, label: str, n: int = 5) -> list[tuple[str, float]]:
        """The ``n`` features of ``text`` that pushed hardest towards ``label``:
        (readable name, contribution to that label's log-odds above the mean)."""
        k = self.labels.index(label)
        named = features.named_features(text)
        factor = fit.scale(self.norm, len(named))
        shares: dict[str, float] = {}
        for name, b in named:
            row = self.weights.get(b)
            if row is not None:
                lift = (row[k] - sum(row) / self._size) * factor
                shares[name] = shares.get(name, 0.0) + lift
        return sorted(shares.items(), key=lambda item: -item[1])[:n]

    def to_json(self) -> dict[str, Any]:
        """The model as a JSON-ready dict; only buckets seen in training."""
        return {
            "format": FORMAT,
            "method": self.method,
            "labels": list(self.labels),
            "n_buckets": features.N_BUCKETS,
            "norm": self.norm,
            "temperature": self.temperature,
            "bias": self.bias,
            "weights": {str(b): row for b, row in sorted(self.weights.items())},
        }

    def save(self, path: str | Path) -> None:
        """Write compact JSON (portable: buckets come from crc32, not hash())."""
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.to_json(), handle, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TaskClassifier":
        """Rebuild a model from ``to_json`` output, refusing foreign formats."""
        if data.get("format") != FORMAT or data.get("n_buckets") != features.N_BUCKETS:
            raise ValueError(f"not a {FORMAT} model with {features.N_BUCKETS} buckets")
        try:
            weights = {int(b): [float(v) for v in row] for b, row in data["weights"].items()}
            model = cls(
                labels=[str(label) for label in data["labels"]],
                bias=[float(v) for v in data["bias"]],
                weights=weights,
                norm=str(data["norm"]),
                method=str(data["method"]),
                temperature=float(data.get("temperature", 1.0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"malformed {FORMAT} model: {exc!r}") from None
        if len(model.bias) != len(model.labels) or any(
            len(row) != len(model.labels) for row in weights.values()
        ):
            raise ValueError(f"malformed {FORMAT} model: vectors do not match the labels")
        return model

    @classmethod
    def load(cls, path: str | Path) -> "TaskClassifier":
        """Read a model written by ``save``."""
        with open(path, encoding="utf-8") as handle:
            return cls.from_json(json.load(handle))


@functools.cache
def load_default() -> TaskClassifier:
    """The shipped model (trained on ``data/train.jsonl`` only), loaded once."""
    resource = importlib.resources.files("hxgw.routing.learned") / "data" / DEFAULT_MODEL
    return TaskClassifier.from_json(json.loads(resource.read_text(encoding="utf-8")))
