"""With `--workers N` the operator still sees one daemon: the workers' figures, added up.

Each worker writes its own figures (every metric sample, and the request counts
that /status shows) to a file in a directory its supervisor shares with all of
them, once a second. The worker that answers a scrape adds its own live
figures to the others' last ones, so a scrape sees every worker's requests
whichever worker it reached, at most a second behind.

A worker that died keeps its counts in the sum: while it is down its last file
is read for its counts alone (its gauges, requests in flight, are gone with it),
and a worker started again moves its predecessor's counts to `retired-N.json`
before it writes its own. Otherwise each restart would make the daemon's
counters drop, which Prometheus takes for a reset and `rate()` for a burst.

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

from hxgw.observe.status_sum import total_status

SHARED_DIR = "HX_WORKERS_DIR"
"""The environment variable that names the directory the supervisor shares."""
WORKER = "HX_WORKER"
"""... and the one that tells a worker its index (0, 1, ...): unset in a lone daemon."""
STALE = 10.0
"""A worker whose file is older than this is gone (and is being started again)."""
# Samples that are not a count of something: the most (or, for a store's health, the
# worst) over the workers says what the daemon's is; every other sample is added up.
HIGHEST = frozenset(
    {
        "hxgw_config_generation",
        "hxgw_config_reloads_total",  # each worker counts the daemon's reloads
        "hxgw_circuit_state",
        "hxgw_model_stalled",
        "hxgw_upstream_up",
        "hxgw_event_loop_lag_seconds",
        "hxgw_ledger_spool_bytes",  # one directory, which every worker measures whole
        "hxgw_ledger_spool_limit_bytes",
        "process_max_fds",
        # The limiter's figures of the key, which the workers share: each worker says
        # them as of its last request of the key, and spend only grows in a period.
        "hxgw_key_budget",
        "hxgw_key_budget_spent",
        "hxgw_team_budget",  # as a key's: the limiter's figures the workers share
        "hxgw_team_budget_spent",
    }
)
# A reload some worker refused is one the daemon did not take whole.
LOWEST = frozenset(
    {"hxgw_limits_store_up", "hxgw_key_store_up", "hxgw_config_last_reload_successful"}
)
STARTED = "process_start_time_seconds"
"""The daemon's: its supervisor's start, which no worker started again moves (Prometheus
takes a change of it for a restart of the whole daemon)."""

Family = dict[str, Any]
"""One metric family as JSON: name, documentation, type, unit and its samples."""


class WorkerFigures:
    """This worker's file in the shared directory, and the other workers' files."""

    def __init__(self, directory: Path, worker: str) -> None:
        self.directory, self.worker = directory, worker
        self.path = directory / f"figures-{worker}.json"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerFigures | None:
        directory, worker = env.get(SHARED_DIR), env.get(WORKER)
        return cls(Path(directory), worker) if directory and worker is not None else None

    def retire_previous(self) -> None:
        """A worker started again: add its predecessor's counts to this worker's retired
        ones, which stay in the sum for as long as the daemon runs."""
        try:
            last = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return  # the first start, or nothing readable to keep
        retired = self.directory / f"retired-{self.worker}.json"
        try:
            before = json.loads(retired.read_bytes())
        except (OSError, ValueError):
            before = None
        kept = counts_only(last)
        if before is not None:
            metrics = added([before["metrics"], kept["metrics"]])
            kept = {"metrics": metrics, "status": total_status(before["status"], [kept["status"]])}
        _write(retired, kept)
        self.path.unlink(missing_ok=True)

    def publish(self, registry: CollectorRegistry, status: Mapping[str, Any]) -> None:
        """Write this worker's figures; a reader never sees a half-written file."""
        _write(self.path, {"metrics": families(registry), "status": status})

    def others(self) -> list[dict[str, Any]]:
        """The last figures of every other worker (of one that is down, its counts), and
        the counts of the workers' earlier runs."""
        found = []
        now = time.time()
        for path in self.directory.glob("*.json"):
            if path == self.path:
                continue
            try:
                stale = now - path.stat().st_mtime > STALE
                figures = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue  # a worker gone between the listing and the read
            live = path.name.startswith("figures-") and not stale
            found.append(figures if live else counts_only(figures))
        return found


def _write(path: Path, figures: Mapping[str, Any]) -> None:
    """A reader never sees a half-written file."""
    partial = path.with_suffix(".partial")
    partial.write_bytes(json.dumps(figures).encode())
    os.replace(partial, path)


COUNTED = frozenset({"counter", "histogram", "summary"})


def counts_only(figures: Mapping[str, Any]) -> dict[str, Any]:
    """A gone worker's figures as they still count: its counters and histograms, its
    requests served and its ledger's rows spooled and dropped; not what it had in flight,
    nor its gauges."""
    metrics = [f for f in figures["metrics"] if f["type"] in COUNTED]
    status = figures["status"]
    requests = {"total": status["requests"]["total"], "per_second": 0.0, "inflight": 0}
    kept: dict[str, Any] = {
        "requests": requests | {"active_streams": 0},
        "models": [
            {"name": m["name"], "requests": m["requests"], "inflight": 0} for m in status["models"]
        ],
        "upstreams": [{"name": u["name"], "shed": u.get("shed", 0)} for u in status["upstreams"]],
    }
    ledger = status.get("ledger")
    if ledger:  # /status.json's counts would fall as /metrics' hxgw_ledger_rows do not
        counted = {f: ledger.get(f, 0) for f in ("rows_spooled", "rows_dropped")}
        kept["ledger"] = {"spool_bytes": 0, "pending_rows": 0} | counted
    return {"metrics": metrics, "status": kept}


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


def render_total(own: list[Family], others: Iterable[list[Family]], started: float) -> bytes:
    """The Prometheus text of every worker's families added up, sample by sample, and the
    daemon's start (`STARTED`)."""
    merged = added([own, *others])
    for family in merged:
        if family["name"] == STARTED:
            family["samples"] = [[STARTED, {}, started]]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(merged))
    return generate_latest(registry)


def added(workers: Iterable[list[Family]]) -> list[Family]:
    """The workers' families, sample by sample: counts added, the rest as `_combine` says."""
    merged: dict[str, Family] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for worker in workers:
        for family in worker:
            name = family["name"]
            merged.setdefault(name, family)
            into = values.setdefault(name, {})
            for sample, labels, value in family["samples"]:
                key = (sample, tuple(sorted(labels.items())))
                into[key] = _combine(sample, into.get(key), value)
    return [
        family | {"samples": [[s, dict(labels), v] for (s, labels), v in values[name].items()]}
        for name, family in merged.items()
    ]


def _combine(sample: str, before: float | None, value: float) -> float:
    if before is None:
        return value
    if sample in HIGHEST or sample == "python_info":
        return max(before, value)
    if sample in LOWEST:
        return min(before, value)
    return before + value


class _Fixed(Collector):
    """Collects the merged families as they are."""

    def __init__(self, merged: list[Family]) -> None:
        self.merged = merged

    def collect(self) -> Iterator[Metric]:
        for family in self.merged:
            metric = Metric(family["name"], family["documentation"], family["type"], family["unit"])
            for sample, labels, value in family["samples"]:
                metric.add_sample(sample, labels, value)
            yield metric
