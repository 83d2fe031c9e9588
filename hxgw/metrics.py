"""Prometheus metrics, in a registry of the process's own (never the library's global one).

Labels hold only names the operator configured (endpoint, group, model,
upstream) and fixed words; never a key, a prompt or anything a client wrote.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from hxgw.health import HealthBook

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
OVERHEAD_BUCKETS = (5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1)
CIRCUIT_VALUES = {"closed": 0.0, "half_open": 0.5, "open": 1.0}
_TOKENS = re.compile(rb'"(prompt_tokens|completion_tokens)"\s*:\s*(\d+)')


class Metrics:
    def __init__(self, health: HealthBook, inflight: Callable[[], int]) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.requests = Counter(
            "hxgw_requests",
            "Requests answered, by final status.",
            ["endpoint", "group", "model", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "hxgw_request_duration_seconds",
            "Whole request, first byte in to last byte out.",
            ["endpoint", "model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttfb = Histogram(
            "hxgw_time_to_first_byte_seconds",
            "Request start to the upstream's first body byte.",
            ["endpoint", "model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.overhead = Histogram(
            "hxgw_gateway_overhead_seconds",
            "Time the gateway itself adds to the first byte: before the "
            "upstream request is sent, and from the upstream's first byte "
            "to the client's.",
            buckets=OVERHEAD_BUCKETS,
            registry=registry,
        )
        self.upstream_errors = Counter(
            "hxgw_upstream_errors",
            "Failed upstream attempts.",
            ["model", "kind"],
            registry=registry,
        )
        self.failovers = Counter(
            "hxgw_failovers",
            "Moves from one candidate to the next.",
            ["group", "from_model", "to_model"],
            registry=registry,
        )
        self.active_streams = Gauge(
            "hxgw_active_streams", "SSE streams being relayed.", registry=registry
        )
        self.tokens = Counter(
            "hxgw_tokens",
            "Tokens the upstream reported in `usage`.",
            ["model", "kind"],
            registry=registry,
        )
        self.reloads = Counter(
            "hxgw_config_reloads", "Config reloads, by result.", ["result"], registry=registry
        )
        self.generation = Gauge(
            "hxgw_config_generation", "The config generation serving.", registry=registry
        )
        self.upstream_up = Gauge(
            "hxgw_upstream_up",
            "1 when the upstream answered recently.",
            ["upstream"],
            registry=registry,
        )
        inflight_gauge = Gauge(
            "hxgw_inflight_requests", "Requests being served.", registry=registry
        )
        inflight_gauge.set_function(lambda: float(inflight()))
        registry.register(_CircuitCollector(health))
        # labels() takes a lock and builds a key on every call; the label sets a
        # request can produce are few (configured names, status codes), so each
        # one's children are looked up once and kept.
        self._children: dict[tuple[str, str, str, int], tuple[Any, Any, Any]] = {}
        self._token_children: dict[tuple[str, bytes], Any] = {}

    def request_finished(
        self,
        endpoint: str,
        group: str,
        model: str,
        status: int,
        seconds: float,
        ttfb: float | None,
        overhead: float | None,
    ) -> None:
        key = (endpoint, group, model, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(endpoint, group, model, str(status)),
                self.duration.labels(endpoint, model),
                self.ttfb.labels(endpoint, model),
            )
        count, duration, first_byte = children
        count.inc()
        duration.observe(seconds)
        if ttfb is not None:
            first_byte.observe(ttfb)
        if overhead is not None:
            self.overhead.observe(overhead)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def count_tokens(self, model: str, data: bytes) -> None:
        """Count the `usage` an upstream reported in `data`: a whole JSON body, or one SSE
        usage chunk. Only called on bytes that contain `"usage"`."""
        for kind, value in _TOKENS.findall(data):
            child = self._token_children.get((model, kind))
            if child is None:
                label = "prompt" if kind == b"prompt_tokens" else "completion"
                child = self._token_children[model, kind] = self.tokens.labels(model, label)
            child.inc(int(value))


class _CircuitCollector(Collector):
    """Circuit states are read from the health book at scrape time, never copied."""

    def __init__(self, health: HealthBook) -> None:
        self.health = health

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "hxgw_circuit_state", "0 closed, 0.5 half-open, 1 open.", labels=["model"]
        )
        for model in self.health:
            family.add_metric([model.name], CIRCUIT_VALUES[model.circuit])
        yield family
