"""With `--workers N` the operator still sees one daemon: the workers' figures, added up.

Each worker writes its own figures (every metric sample, and the request counts
that /status shows) to a file in a directory its supervisor shares with all of
them, once a second. The worker that answers a scrape adds its own live
figures to the others' last ones, so a scrape sees every worker's requests
whichever worker it reached, at most a second behind.

Why files and not prometheus_client's multiprocess mode: that mode keeps only
the library's own metric objects in its shared memory, and the gateway's
per-request figures are plain numbers read by a collector at scrape time.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

SHARED_DIR = "HX_WORKERS_DIR"
"""The environment variable that names the directory the supervisor shares."""
STALE = 10.0
"""A worker whose file is older than this is gone (and is being started again)."""
# Samples that are not a count of something: the most (or, for a start, the earliest)
# over the workers says what the daemon's is; every other sample is added up.
HIGHEST = frozenset(
    {
        "hxgw_config_generation",
        "hxgw_circuit_state",
        "hxgw_upstream_up",
        "hxgw_event_loop_lag_seconds",
        "process_max_fds",
    }
)
EARLIEST_SUFFIXES = ("_created", "process_start_time_seconds")

Family = dict[str, Any]
"""One metric family as JSON: name, documentation, type, unit and its samples."""


class WorkerFigures:
    """This worker's file in the shared directory, and the other workers' files."""

    def __init__(self, directory: Path, worker: str) -> None:
        self.directory, self.worker = directory, worker
        self.path = directory / f"figures-{worker}.json"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerFigures | None:
        directory, worker = env.get(SHARED_DIR), env.get("HX_WORKER")
        return cls(Path(directory), worker) if directory and worker is not None else None

    def publish(self, registry: CollectorRegistry, status: Mapping[str, Any]) -> None:
        """Write this worker's figures; a reader never sees a half-written file."""
        figures = {"metrics": families(registry), "status": status}
        partial = self.path.with_suffix(".partial")
        partial.write_bytes(json.dumps(figures).encode())
        os.replace(partial, self.path)

    def others(self) -> list[dict[str, Any]]:
        """The last figures of every other live worker."""
        found = []
        now = time.time()
        for path in self.directory.glob("figures-*.json"):
            if path == self.path:
                continue
            try:
                if now - path.stat().st_mtime > STALE:
                    continue
                found.append(json.loads(path.read_bytes()))
            except (OSError, ValueError):
                continue  # a worker gone between the listing and the read
        return found


def families(registry: CollectorRegistry) -> list[Family]:
    return [
        {
            "name": metric.name,
            "documentation": metric.documentation,
            "type": metric.type,
            "unit": metric.unit,
            "samples": [[s.name, s.labels, s.value] for s in metric.samples],
        }
        for metric in registry.collect()
    ]


def render_total(own: list[Family], others: Iterable[list[Family]]) -> bytes:
    """The Prometheus text of every worker's families added up, sample by sample."""
    merged: dict[str, Family] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for worker in (own, *others):
        for family in worker:
            name = family["name"]
            merged.setdefault(name, family)
            into = values.setdefault(name, {})
            for sample, labels, value in family["samples"]:
                key = (sample, tuple(sorted(labels.items())))
                into[key] = _combine(sample, into.get(key), value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(merged, values))
    return generate_latest(registry)


def _combine(sample: str, before: float | None, value: float) -> float:
    if before is None:
        return value
    if sample in HIGHEST or sample == "python_info":
        return max(before, value)
    if sample.endswith(EARLIEST_SUFFIXES):
        return min(before, value)
    return before + value


class _Fixed(Collector):
    """Collects the merged families as they are."""

    def __init__(
        self,
        merged: dict[str, Family],
        values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]],
    ) -> None:
        self.merged, self.values = merged, values

    def collect(self) -> Iterator[Metric]:
        for name, family in self.merged.items():
            metric = Metric(name, family["documentation"], family["type"], family["unit"])
            for (sample, labels), value in self.values[name].items():
                metric.add_sample(sample, dict(labels), value)
            yield metric


def total_status(own: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """/status.json's request counts, added up over the workers: the daemon's totals,
    each model's requests and requests in flight, and each upstream's saturation."""
    requests = dict(own["requests"])
    models = {m["name"]: dict(m) for m in own["models"]}
    upstreams = {u["name"]: dict(u) for u in own["upstreams"]}
    for status in others:
        for upstream in status.get("upstreams", ()):
            mine = upstreams.get(upstream["name"])
            if mine is not None:
                for field in ("in_use", "cap", "queued", "shed"):
                    mine[field] = mine.get(field, 0) + upstream.get(field, 0)
        for field in ("total", "per_second", "inflight", "active_streams"):
            requests[field] = round(requests[field] + status["requests"][field], 2)
        for model in status["models"]:
            mine = models.get(model["name"])
            if mine is not None:
                mine["requests"] += model["requests"]
                mine["inflight"] += model["inflight"]
    return {
        **own,
        "requests": requests,
        "models": list(models.values()),
        "upstreams": list(upstreams.values()),
    }
