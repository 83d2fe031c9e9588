"""A histogram kept as plain numbers (no lock: the event loop's one thread updates it),
and its Prometheus family, built at scrape time."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString


class Histogram:
    """Bucket counts and a sum; `le` buckets, so a value on a bound counts in it."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        buckets, running = [], 0
        bounds = [*map(floatToGoString, self.bounds), "+Inf"]
        for bound, count in zip(bounds, self.counts, strict=True):
            running += count
            buckets.append((bound, float(running)))
        return buckets


def histogram_family(
    name: str,
    documentation: str,
    children: Iterable[tuple[tuple[str, ...], Histogram]],
    labels: tuple[str, ...] = ("endpoint", "model"),
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=list(labels))
    for values, histogram in children:
        family.add_metric(list(values), histogram.cumulative(), histogram.total)
    return family
