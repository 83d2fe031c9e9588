"""The ledger as series over time, for the status page's charts: the last hour by minute
and the last day by hour, per key and per model.

Three statements per window, each grouped by bucket on the store: usage per key, usage
and trouble per model, and a sample of latencies per model and bucket. Percentiles are
worked out here, not in SQL: SQLite has none, and PostgreSQL's would read differently
from ours. At most `LATENCY_SAMPLES` latencies of each model and bucket are read, chosen
by request id (random), so a busy minute costs no more than a quiet one.

Buckets are aligned on the clock (minutes, hours; UTC), so a refresh moves them by whole
buckets; the last one is the current, partial one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from hxgw.store import Connection, Dialect
from hxgw.usage.report import NO_MODEL_SQL, REQUESTS, ledger_exists, summed_cost
from hxgw.usage.schema import A_REQUEST, FAILED, TABLE

LATENCY_SAMPLES = 500
"""Latencies read per model and bucket, at most; a p99 from 500 is the 5th largest."""


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    span: int
    """Seconds covered."""
    bucket: int
    """Seconds per bucket."""
    refresh: float
    """Seconds a read of it is kept (hxgw.usage.RecentUsage): the day's buckets are hours,
    and reading a day of a busy ledger every few seconds would cost the store more than
    the page is worth."""

    @property
    def buckets(self) -> int:
        return self.span // self.bucket

    def start(self, now: float) -> float:
        """The first bucket's start: the window ends with the bucket holding `now`."""
        end = (math.floor(now / self.bucket) + 1) * self.bucket
        return float(end - self.span)


HOUR = Window("hour", 3600, 60, refresh=3.0)
DAY = Window("day", 86400, 3600, refresh=60.0)
WINDOWS = (HOUR, DAY)

# PostgreSQL's CAST of a float rounds to the nearest integer, SQLite's truncates: FLOOR
# keeps 59.7 seconds in bucket 0 on both. (SQLite's own floor() needs its math functions,
# which not every build has; its CAST is a floor here, as started >= the window's start.)
_BUCKET: dict[Dialect, str] = {
    "sqlite": "CAST((started - ?) / ? AS INTEGER)",
    "postgresql": "CAST(FLOOR((started - ?) / ?) AS INTEGER)",
}
_IN_WINDOW = "started >= ? AND started < ?"


def usage_series(connection: Connection, window: Window, now: float) -> dict[str, Any]:
    """The window ending with the bucket that holds `now` (Unix seconds), as /status.json
    gives it: for each key its requests, total tokens and cost per bucket; for each model
    those, its errors (`schema.FAILED`), failovers and p50/p99 latency (seconds from start
    to end; None for a bucket without requests)."""
    start = window.start(now)
    result: dict[str, Any] = {
        "bucket_seconds": window.bucket,
        "start": start,
        "buckets": window.buckets,
        "keys": {},
        "models": {},
    }
    if not ledger_exists(connection):  # nothing written yet: no table to read
        return result
    bucket = _BUCKET[connection.dialect]
    params = (start, float(window.bucket), start, start + window.span)
    # Only constants are pasted in; the window is all parameters.
    per_key = connection.execute(
        f"SELECT key_name, {bucket} AS b, {REQUESTS}, SUM(total_tokens), SUM(cost)"  # noqa: S608
        f" FROM {TABLE} WHERE {_IN_WINDOW} GROUP BY key_name, b",
        params,
    )
    per_model = connection.execute(
        f"SELECT {NO_MODEL_SQL} AS m, {bucket} AS b, {REQUESTS}, SUM(total_tokens), SUM(cost),"  # noqa: S608
        f" SUM(CASE WHEN {FAILED} THEN 1 ELSE 0 END), SUM(failovers)"
        f" FROM {TABLE} WHERE {_IN_WINDOW} GROUP BY m, b",
        params,
    )
    latencies = connection.execute(
        "SELECT m, b, latency FROM ("  # noqa: S608
        f"SELECT {NO_MODEL_SQL} AS m, {bucket} AS b, ended - started AS latency,"
        f" ROW_NUMBER() OVER (PARTITION BY {NO_MODEL_SQL}, {bucket} ORDER BY request_id) AS n"
        f" FROM {TABLE} WHERE {_IN_WINDOW} AND {A_REQUEST}) AS sampled WHERE n <= ?",
        (*params[:2], *params, LATENCY_SAMPLES),
    )
    size = window.buckets
    keys: dict[str, dict[str, list[Any]]] = {}
    for name, index, requests, tokens, cost in per_key:
        series = keys.setdefault(str(name), _zeros(size, "requests", "tokens", "cost"))
        _put(series, int(index), requests=int(requests), tokens=int(tokens), cost=summed_cost(cost))
    models: dict[str, dict[str, list[Any]]] = {}
    for name, index, requests, tokens, cost, errors, failovers in per_model:
        series = models.setdefault(
            str(name), _zeros(size, "requests", "tokens", "cost", "errors", "failovers")
        )
        _put(
            series,
            int(index),
            requests=int(requests),
            tokens=int(tokens),
            cost=summed_cost(cost),
            errors=int(errors),
            failovers=int(failovers),
        )
    sampled: dict[tuple[str, int], list[float]] = defaultdict(list)
    for name, index, latency in latencies:
        sampled[str(name), int(index)].append(float(latency))
    for series in models.values():
        series["p50_latency"] = [None] * size
        series["p99_latency"] = [None] * size
    for (name, index), values in sampled.items():
        if name in models and 0 <= index < size:
            values.sort()
            models[name]["p50_latency"][index] = round(percentile(values, 0.5), 6)
            models[name]["p99_latency"][index] = round(percentile(values, 0.99), 6)
    result["keys"] = dict(sorted(keys.items()))
    result["models"] = dict(sorted(models.items()))
    return result


def last_bucket(window: Window) -> Window:
    """The window's last bucket alone: what changes between two reads of it."""
    return Window(window.name, window.bucket, window.bucket, window.refresh)


def with_last(whole: dict[str, Any], last: dict[str, Any]) -> dict[str, Any] | None:
    """`whole` (a window's series) with its last bucket as `last` (that bucket's series,
    read later) has it; None when `last` is no longer `whole`'s last bucket (a new
    bucket has begun since `whole` was read)."""
    buckets = whole["buckets"]
    if last["start"] != whole["start"] + (buckets - 1) * whole["bucket_seconds"]:
        return None
    return {
        **whole,
        "keys": _spliced(whole["keys"], last["keys"], buckets),
        "models": _spliced(whole["models"], last["models"], buckets),
    }


def _spliced(
    before: dict[str, dict[str, list[Any]]], last: dict[str, dict[str, list[Any]]], size: int
) -> dict[str, dict[str, list[Any]]]:
    spliced = {}
    for name in sorted(before.keys() | last.keys()):
        old, new = before.get(name), last.get(name)
        fields = (old or new or {}).keys()
        spliced[name] = {
            field: [
                *(old[field][:-1] if old else _nothing(field, size - 1)),
                new[field][0] if new else _nothing(field, 1)[0],
            ]
            for field in fields
        }
    return spliced


def _nothing(field: str, size: int) -> list[Any]:
    """A series' value for buckets without requests: no latency, zero of the rest."""
    return [None if field.endswith("_latency") else 0] * size


def percentile(ordered: list[float], fraction: float) -> float:
    """Linear between the two nearest ranks, as PostgreSQL's percentile_cont."""
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _zeros(size: int, *names: str) -> dict[str, list[Any]]:
    return {name: [0] * size for name in names}


def _put(series: dict[str, list[Any]], index: int, **values: float) -> None:
    # The WHERE keeps rows in the window; this only guards against a bucket number off it.
    if 0 <= index < len(series["requests"]):
        for name, value in values.items():
            series[name][index] = value
