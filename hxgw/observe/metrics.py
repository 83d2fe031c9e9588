"""Prometheus metrics, in a registry of the process's own (never the library's global one).

Labels hold only names the operator configured (endpoint, group, model,
upstream) and fixed words; never a key, a prompt or anything a client wrote.

The figures every request updates (requests, durations, time to first byte,
overhead, tokens) are plain numbers that a collector reads at scrape time:
prometheus_client's own metrics take a lock on every increment, which the
event loop's single thread never needs, and cost as much as all routing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from hxgw.observe.histogram import Histogram, histogram_family
from hxgw.observe.key_metrics import KeyFigures
from hxgw.observe.model_series import ModelSeries
from hxgw.routing.health import HealthBook

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
OVERHEAD_BUCKETS = (5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1)
RELOAD_RESULTS = ("ok", "rejected", "failed")
CIRCUIT_VALUES = {"closed": 0.0, "half_open": 0.5, "open": 1.0}


# Every counter's `_created` gauge says when a label set was first seen: nothing a dashboard
# reads, and a second series per counter. The library's one switch is process-wide.
disable_created_metrics()  # type: ignore[no-untyped-call]  # the library leaves it untyped


class Metrics:
    def __init__(self, health: HealthBook, inflight: Callable[[], int]) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self._requests: dict[tuple[str, str, str, str], list[float]] = {}
        self._duration: dict[tuple[str, str], Histogram] = {}
        self._ttfb: dict[tuple[str, str], Histogram] = {}
        self._overhead = Histogram(OVERHEAD_BUCKETS)
        self._tokens: dict[str, list[int]] = {}  # model: [prompt, completion]
        self.keys = KeyFigures()
        self.upstream_errors = Counter(
            "hxgw_upstream_errors",
            "Upstream attempts that failed, by model and kind: timeout, connect_error, reset, "
            "protocol_error, http_<status>, ..., and stream_* for an answer cut after its 200.",
            ["model", "kind"],
            registry=registry,
        )
        self.failovers = Counter(
            "hxgw_failovers",
            "Moves to the next candidate after one failed before its first byte reached the client.",
            ["group", "from_model", "to_model"],
            registry=registry,
        )
        self.models = ModelSeries(self.upstream_errors, self._tokens)
        self.active_streams = Gauge(
            "hxgw_active_streams", "SSE streams being relayed.", registry=registry
        )
        self.reloads = Counter(
            "hxgw_config_reloads",
            "Config reloads (SIGHUP), by result: ok, rejected (a config problem), failed.",
            ["result"],
            registry=registry,
        )
        # Each result at 0 from the start: a series born at 1 is no increase to
        # Prometheus, so the first rejected reload after a start would alert no one.
        for result in RELOAD_RESULTS:
            self.reloads.labels(result)
        self.last_reload_ok = Gauge(
            "hxgw_config_last_reload_successful",
            "1 while the last reload took (or none was tried), 0 while the config files "
            "it read are refused and an older config serves.",
            registry=registry,
        )
        self.last_reload_ok.set(1.0)
        self.generation = Gauge(
            "hxgw_config_generation", "The config generation serving.", registry=registry
        )
        self.upstream_up = Gauge(
            "hxgw_upstream_up",
            "1 when the upstream answered a probe or a request within readiness.stale_after.",
            ["upstream"],
            registry=registry,
        )
        inflight_gauge = Gauge(
            "hxgw_inflight_requests",
            "API requests being served (the operator's routes not counted).",
            registry=registry,
        )
        inflight_gauge.set_function(lambda: float(inflight()))
        self.loop_lag = Gauge(
            "hxgw_event_loop_lag_seconds",
            "How late the event loop ran a timer, the worst of the last 2 s.",
            registry=registry,
        )
        registry.register(_CircuitCollector(health))
        registry.register(_RequestCollector(self))
        # The label sets a request can produce are few (configured names, status
        # codes): each one's numbers are found by one dict lookup.
        self._children: dict[
            tuple[str, str, str, int], tuple[list[float], Histogram, Histogram]
        ] = {}
        self._counted: dict[tuple[str, str, int], list[float]] = {}

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
                self._requests.setdefault((endpoint, group, model, str(status)), [0.0]),
                self._duration.setdefault((endpoint, model), Histogram(LATENCY_BUCKETS)),
                self._ttfb.setdefault((endpoint, model), Histogram(LATENCY_BUCKETS)),
            )
        count, duration, first_byte = children
        count[0] += 1
        duration.observe(seconds)
        if ttfb is not None:
            first_byte.observe(ttfb)
        if overhead is not None:
            self._overhead.observe(overhead)

    def request_counted(self, endpoint: str, status: int, group: str = "") -> None:
        """A request counted in hxgw_requests_total but not timed: one the gateway refused
        before it asked any upstream (a bad key, a bad body, a key's limits), one no route
        takes (`endpoint` is the unrouted endpoint's name, never the path a scanner made
        up), or one the operator's routes refused. Their time is the gateway's alone:
        in the latency histograms it would pass for fast answers of the upstreams."""
        count = self._counted.get((endpoint, group, status))
        if count is None:
            labels = (endpoint, group, "", str(status))
            count = self._counted[endpoint, group, status] = self._requests.setdefault(
                labels, [0.0]
            )
        count[0] += 1

    def reload_done(self, result: str) -> None:
        """A reload ended with `result` (one of RELOAD_RESULTS)."""
        self.reloads.labels(result).inc()
        self.last_reload_ok.set(1.0 if result == "ok" else 0.0)

    def upstream_is_up(self, upstream: str, up: bool) -> None:
        self.upstream_up.labels(upstream).set(1.0 if up else 0.0)

    def upstream_gone(self, upstream: str) -> None:
        """A reload removed it: its last state would hide the others' (max() in alerts)."""
        with contextlib.suppress(KeyError):
            self.upstream_up.remove(upstream)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def count_tokens(self, model: str, prompt: int, completion: int) -> None:
        """Count the tokens an upstream reported in `usage` for `model`."""
        counts = self._tokens.get(model)
        if counts is None:
            counts = self._tokens[model] = [0, 0]
        counts[0] += prompt
        counts[1] += completion

    def key_used(
        self, key: str, prompt: int, completion: int, cost: float, outcome: str = "ok"
    ) -> None:
        """One request of the key named `key` (see `KeyFigures.used`)."""
        self.keys.used(key, prompt, completion, cost, outcome)

    def key_billed(self, key: str, prompt: int, completion: int, cost: float) -> None:
        """Usage billed to the key named `key` apart from its requests (`KeyFigures.billed`)."""
        self.keys.billed(key, prompt, completion, cost)

    def families(
        self,
    ) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        """The per-request figures as Prometheus families, for a scrape."""
        requests = CounterMetricFamily(
            "hxgw_requests",
            "API requests answered, by final status (499: the client left before one); "
            "also requests no route takes (endpoint unrouted or unrouted_anthropic, never "
            "their path) and the operator's routes' refusals (4xx, by route).",
            labels=["endpoint", "group", "model", "status"],
        )
        for labels, count in list(self._requests.items()):
            requests.add_metric(labels, count[0])
        yield requests
        yield histogram_family(
            "hxgw_request_duration_seconds",
            "Whole request, first byte in to last byte out, of requests an upstream was "
            "asked for (model empty when none served) and of successes; not of the "
            "gateway's own refusals (a bad key, a bad body, a key's limits).",
            list(self._duration.items()),
        )
        yield histogram_family(
            "hxgw_time_to_first_byte_seconds",
            "Request start to the upstream's first body byte.",
            list(self._ttfb.items()),
        )
        yield histogram_family(
            "hxgw_gateway_overhead_seconds",
            "Time the gateway itself adds to the first byte: before the upstream request "
            "is sent, and from the upstream's first byte to the client's.",
            [((), self._overhead)],
            labels=(),
        )
        tokens = CounterMetricFamily(
            "hxgw_tokens", "Tokens the upstream reported in `usage`.", labels=["model", "kind"]
        )
        for model, (prompt, completion) in list(self._tokens.items()):
            tokens.add_metric([model, "prompt"], prompt)
            tokens.add_metric([model, "completion"], completion)
        yield tokens
        yield from self.keys.families()


class _RequestCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        yield from self.metrics.families()


class _CircuitCollector(Collector):
    """Circuit states, and stalls, are read from the health book at scrape time, never copied."""

    def __init__(self, health: HealthBook) -> None:
        self.health = health

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "hxgw_circuit_state",
            "Each model's circuit breaker: 0 closed, 0.5 half-open, 1 open (the model is skipped).",
            labels=["model"],
        )
        stalled = GaugeMetricFamily(
            "hxgw_model_stalled",
            "1 while a model with its circuit closed is skipped because its oldest request "
            "has waited past the stall limit for a first byte (routing.health), else 0.",
            labels=["model"],
        )
        now = time.monotonic()
        for model in self.health.serving():
            family.add_metric([model.name], CIRCUIT_VALUES[model.circuit_now(now)])
            stuck = model.circuit == "closed" and model.stalled(now)
            stalled.add_metric([model.name], 1.0 if stuck else 0.0)
        yield family
        yield stalled
