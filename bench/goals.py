"""The issue's targets (issue 6, and issue 18's before/after with `--compare`), each
with what a run measured and whether it met it. run.py stores them under "targets"."""

from __future__ import annotations

from typing import Any

from columns import field, pct

C16_KEEP = 2 / 3  # issue 18: c=16 req/s may drop by at most a third
TTFB_GROWTH_MS = 0.5  # issue 18: added TTFB p50 may grow by at most 0.5 ms


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with what this run measured."""
    d = results["derived"]
    c16, c1 = d["chat"].get("16", {}), d["chat"].get("1", {})
    chat16 = results.get("chat", {}).get("16", {})
    slow = results.get("slow_streams", {}).get("hxgw", {})
    stream = results.get("stream", {})
    added_stream = d["stream"].get("hxgw", {})

    def check(
        name: str, value: float | None, goal: float, unit: str, higher: bool
    ) -> dict[str, Any]:
        ok = None if value is None else (value >= goal if higher else value <= goal)
        sign = ">=" if higher else "<="
        return {
            "target": name,
            "goal": f"{sign} {goal:g}{unit}",
            "value": value,
            "unit": unit,
            "ok": ok,
        }

    held = None
    if "hxgw" in stream and "direct" in stream:
        held = float(stream["hxgw"]["late_chunks"] - stream["direct"]["late_chunks"])
    issue18: list[dict[str, Any]] = []
    cmp = d.get("compare")
    if cmp:
        old = cmp["label"]
        issue18 = [
            check(
                f"issue 18: c16 req/s, hxgw / {old}",
                pct((cmp["chat"].get("16") or {}).get("rps_ratio")),
                round(100 * C16_KEEP, 1),
                "%",
                True,
            ),
            check(
                f"issue 18: added TTFB p50, hxgw - {old}",
                (cmp.get("stream") or {}).get("added_ttfb_p50_ms_growth"),
                TTFB_GROWTH_MS,
                " ms",
                False,
            ),
        ]
    return [
        *issue18,
        check("throughput c16, hxgw / baseline", c16.get("hxgw_vs_baseline"), 2.0, "x", True),
        check("throughput c16, hxgw / nginx", pct(c16.get("hxgw_vs_nginx")), 20, "%", True),
        check(
            "CPU per request c16 (hxgw)",
            field(chat16, "hxgw", "cpu_us_per_request"),
            150,
            " us",
            False,
        ),
        check("added latency c1 p50", field(c1, "hxgw", "added_p50_ms"), 0.25, " ms", False),
        check("added latency c1 p99", field(c1, "hxgw", "added_p99_ms"), 1.0, " ms", False),
        check("added TTFB p99 (stream)", added_stream.get("added_ttfb_p99_ms"), 1.0, " ms", False),
        check("late chunks (> 1 interval) beyond direct", held, 0, "", False),
        check("1,000 streams peak RSS", slow.get("peak_rss_mb"), 300, " MB", False),
    ]
