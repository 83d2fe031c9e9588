"""How long one classification takes, in three cache states.

Why three: a classifier's cost depends on what is still in a cache when a
prompt arrives, so each state is timed.
- ``cold``: the CPU's caches evicted before the prompt (``EVICT_BYTES`` copied,
  several times a server core's L2): the model's weights and the interpreter's
  own data must come from memory, as after a burst of other work.
- ``first_sight``: after the prompts of ``warm_with`` (say, the training
  prompts: a gateway after some traffic), each prompt timed the first time it
  is classified.
- ``warm``: the prompt was just classified.
The classifier keeps no per-word state (see ``features``), so a word never
seen costs what a known one does; ``cold`` is the state that costs. An
earlier classifier cached per-word work, and ``cold`` then meant "caches
emptied"; it means what stays true for any classifier now. Timing with the
gateway's own work between decisions is ``eval_router``'s.
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

from hxgw.router.classifier import TaskClassifier

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
        _evict(buffers)
        best = min(best, _cpu_us(partial(model.predict_proba, text)))
    return best


def _first_sight(
    model: TaskClassifier, texts: Sequence[str], warm_with: Sequence[str]
) -> list[float]:
    best = [float("inf")] * len(texts)
    for _ in range(RUNS):
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
