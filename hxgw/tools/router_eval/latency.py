"""How long one classification takes, in three cache states.

Why three: the classifier caches each word's summed weights (see
``classifier``), so a prompt's cost depends on how many of its words this
process has seen, and on what the CPU's caches still hold.
- ``cold``: the word cache emptied and the CPU's caches evicted (``EVICT_BYTES``
  copied, several times a server core's L2) before the prompt: the worst
  case, a fresh process after a burst of other work.
- ``first_sight``: the word cache holds the words of ``warm_with`` (say, the
  training prompts: a gateway after some traffic); each prompt is timed the
  first time it is classified, so its new words cost what new words cost.
- ``warm``: the prompt was just classified (all of its words are cached).
Why CPU time (``thread_time_ns``): classification does no I/O and runs on one
thread, so on a core of its own its latency is its CPU time; wall time would
also count the moments other processes held the core. Why the best of
``RUNS``: on a shared machine neighbours still slow a run down (caches, a busy
sibling hyper-thread); the fastest run is the closest to "one core of its own".
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from hxgw.routing.learned.classifier import TaskClassifier

RUNS = 7
EVICT_BYTES = 4 << 20
Percentiles = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Latency:
    """(p50, p99) in µs over the prompts, for each cache state."""

    cold: Percentiles
    first_sight: Percentiles
    warm: Percentiles


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile; ``share`` in [0, 1]."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _spread(values: Sequence[float]) -> Percentiles:
    return percentile(values, 0.5), percentile(values, 0.99)


def _cpu_us(call: Callable[[], object]) -> float:
    started = time.thread_time_ns()
    call()
    return (time.thread_time_ns() - started) / 1000


def _evict(buffers: tuple[bytearray, bytearray]) -> None:
    buffers[0][:] = buffers[1]


def _cold(model: TaskClassifier, text: str, buffers: tuple[bytearray, bytearray]) -> float:
    best = float("inf")
    for _ in range(RUNS):
        model.clear_cache()
        _evict(buffers)
        best = min(best, _cpu_us(partial(model.predict_proba, text)))
    return best


def _first_sight(
    model: TaskClassifier, texts: Sequence[str], warm_with: Sequence[str]
) -> list[float]:
    best = [float("inf")] * len(texts)
    for _ in range(RUNS):
        model.clear_cache()
        for text in warm_with:
            model.predict_proba(text)
        for i, text in enumerate(texts):
            best[i] = min(best[i], _cpu_us(partial(model.predict_proba, text)))
    return best


def _warm(model: TaskClassifier, text: str) -> float:
    model.predict_proba(text)
    return min(_cpu_us(partial(model.predict_proba, text)) for _ in range(RUNS))


def measure(model: TaskClassifier, texts: Sequence[str], warm_with: Sequence[str] = ()) -> Latency:
    """Time ``predict_proba`` on each of ``texts`` in the three cache states."""
    buffers = (bytearray(EVICT_BYTES), bytearray(b"x" * EVICT_BYTES))
    cold = [_cold(model, text, buffers) for text in texts]
    first = _first_sight(model, texts, warm_with)
    warm = [_warm(model, text) for text in texts]
    return Latency(cold=_spread(cold), first_sight=_spread(first), warm=_spread(warm))
