"""Each upstream's saturation, read at scrape time: its cap, the requests in flight
and waiting for a turn, the requests shed, and how long admitted ones waited."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from hxgw.observe.histogram import Histogram, histogram_family
from hxgw.observe.metrics import LATENCY_BUCKETS


class Saturable(Protocol):
    """What is read of an upstream's gate (hxgw.upstream.admission.Gate)."""

    @property
    def name(self) -> str: ...
    def saturation(self) -> dict[str, int]: ...


class SaturationCollector(Collector):
    def __init__(self, gates: Mapping[str, Saturable]) -> None:
        self.gates = gates
        self._waits: dict[str, Histogram] = {}

    def waited(self, upstream: str, seconds: float) -> None:
        """A request to `upstream` waited `seconds` in the queue, for a turn or in vain."""
        histogram = self._waits.get(upstream)
        if histogram is None:
            histogram = self._waits[upstream] = Histogram(LATENCY_BUCKETS)
        histogram.observe(seconds)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        gauges = {
            "cap": ("hxgw_upstream_cap", "Requests an upstream may have in flight at once."),
            "in_use": ("hxgw_upstream_in_use", "Requests in flight to an upstream."),
            "queued": ("hxgw_upstream_queued", "Requests waiting for a turn at an upstream."),
        }
        families = {
            field: GaugeMetricFamily(name, text, labels=["upstream"])
            for field, (name, text) in gauges.items()
        }
        shed = CounterMetricFamily(
            "hxgw_upstream_shed",
            "Requests refused a turn at an upstream at its cap (queue full or timed out).",
            labels=["upstream"],
        )
        for gate in list(self.gates.values()):
            figures = gate.saturation()
            for field, family in families.items():
                family.add_metric([gate.name], figures[field])
            shed.add_metric([gate.name], figures["shed"])
        yield from families.values()
        yield shed
        yield histogram_family(
            "hxgw_upstream_queue_seconds",
            "How long requests that waited for a turn at an upstream waited.",
            [((name,), histogram) for name, histogram in list(self._waits.items())],
            labels=("upstream",),
        )
