"""The status page's Usage section: /status.json's `usage` drawn as pairs of small charts,
the last hour beside the last day, per key and per model (hxgw.usage.series).

Series names (key and model names) reach the page only through `charts.line_chart`, which
escapes them; everything else here is a constant or a number.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from hxgw.server.charts import Figure, line_chart
from hxgw.units import money

Unit = Callable[[float], str]


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _seconds(value: float) -> str:
    return f"{value * 1000:,.0f} ms" if value < 1 else f"{value:,.2f} s"


FIGURES: tuple[tuple[str, str, str, Unit], ...] = (
    ("Tokens per key", "keys", "tokens", _count),
    ("Spend per key", "keys", "cost", money),
    ("Tokens per model", "models", "tokens", _count),
    ("Spend per model", "models", "cost", money),
    ("Requests per model", "models", "requests", _count),
    ("Latency p50 per model", "models", "p50_latency", _seconds),
    ("Latency p99 per model", "models", "p99_latency", _seconds),
    ("Errors per model", "models", "errors", _count),
    ("Failovers per model", "models", "failovers", _count),
)
"""(title, where in a window, which series, how its axis reads), in the page's order."""

WINDOW_NAMES = {"hour": "last hour", "day": "last day"}


def render_usage(usage: Mapping[str, Any] | None) -> str:
    """The Usage heading and what follows it; nothing for a status without `usage`."""
    if not usage:
        return ""
    ledger = str(usage.get("ledger"))
    head = f'<h2>Usage</h2><section class=usage data-ledger="{escape(ledger)}">'
    if ledger == "off":
        body = (
            "<p class=muted>The usage ledger is off (its state directory cannot be "
            "written), so there is no usage to chart.</p>"
        )
    elif ledger != "on":
        body = (
            "<p class=muted>The usage ledger's store cannot be read: "
            f"{escape(str(usage.get('error', '')))}</p>"
        )
    else:
        body = _charts(usage)
    return head + body + "</section>"


def _charts(usage: Mapping[str, Any]) -> str:
    windows: Mapping[str, Mapping[str, Any]] = usage.get("windows") or {}
    charts = []
    for title, where, field, unit in FIGURES:
        for name, window in windows.items():
            series: dict[str, Sequence[Figure]] = {
                series_name: values[field]
                for series_name, values in (window.get(where) or {}).items()
                if field in values
            }
            charts.append(
                line_chart(
                    f"{title}, {WINDOW_NAMES.get(name, name)}",
                    _labels(window),
                    series,
                    unit=unit,
                )
            )
    behind = usage.get("behind_seconds_at_most")
    lag = f"up to {behind:g} s" if isinstance(behind, int | float) else "a few seconds"
    note = (
        "<p class=muted>From the usage ledger: the requests of every worker and instance "
        "writing to its store (the figures above are this instance's), written in batches: "
        f"the charts are {lag} behind the requests. Buckets are minutes (last hour) and hours (last day) "
        "in UTC; the last is the current one, still filling. Latency percentiles come from "
        f"at most {escape(str(usage.get('latency_samples', '')))} requests per model and "
        "bucket.</p>"
    )
    return note + "<div class=charts>" + "".join(charts) + "</div>"


def _labels(window: Mapping[str, Any]) -> list[str]:
    start, step, count = window.get("start"), window.get("bucket_seconds"), window.get("buckets")
    if (
        not isinstance(start, int | float)
        or not isinstance(step, int)
        or not isinstance(count, int)
    ):
        return []
    return [time.strftime("%H:%M", time.gmtime(start + i * step)) for i in range(count)]
