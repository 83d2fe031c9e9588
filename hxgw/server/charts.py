"""Small charts for the status page, drawn as inline SVG on the server.

No script and no external asset, so the page works offline and under its
Content-Security-Policy (`default-src 'none'`). A chart is a few series of
figures over the same buckets of time (the last hour by minute, the last day
by hour), drawn as lines, with its largest value on the axis and a legend.
Names pass through `html.escape`; colours come from a fixed palette by the
series' place, never from the data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape

WIDTH, HEIGHT = 560, 150
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 10, 22
PALETTE = ("#2f6fdf", "#d9480f", "#2b8a3e", "#ae3ec9", "#e67700", "#0c8599", "#c2255c", "#5c7cfa")
MAX_SERIES = len(PALETTE)

Figure = float | None
"""A bucket's value; None where there is nothing to say (no request, no latency)."""


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[Figure]],
    *,
    unit: Callable[[float], str] = lambda v: f"{v:g}",
) -> str:
    """One chart: `labels` name the buckets (first and last are drawn), `series` maps a
    name to one figure per bucket. Past `MAX_SERIES`, the largest totals are kept."""
    busiest = sorted(series, key=lambda name: -sum(v or 0.0 for v in series[name]))[:MAX_SERIES]
    # Drawn in the caller's order, not by size: a name keeps its colour from chart to chart
    # (tokens, latency, ...) whenever the charts show the same names.
    kept = [(name, values) for name, values in series.items() if name in busiest]
    top = max((v for _, values in kept for v in values if v is not None), default=0.0)
    scale = top if top > 0 else 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(labels) - 1)
    lines = []
    for index, (_, values) in enumerate(kept):
        points = " ".join(
            f"{LEFT + i * step:.1f},{TOP + plot_h - (v / scale) * plot_h:.1f}"
            for i, v in enumerate(values)
            if v is not None
        )
        if points:
            lines.append(
                f'<polyline fill="none" stroke="{PALETTE[index]}" stroke-width="1.6" '
                f'points="{points}"/>'
            )
    axis = (
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" '
        f'stroke="currentColor" stroke-opacity=".3"/>'
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">{escape(unit(top))}</text>'
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>'
    )
    if labels:
        axis += (
            f'<text x="{LEFT}" y="{HEIGHT - 6}">{escape(labels[0])}</text>'
            f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
            f"{escape(labels[-1])}</text>"
        )
    legend = "".join(
        f'<span class=key><i style="background:{PALETTE[i]}"></i>{escape(name)}</span>'
        for i, (name, _) in enumerate(kept)
    )
    empty = "" if kept else "<span class=muted>no requests in this window</span>"
    return (
        f"<figure class=chart><figcaption>{escape(title)}</figcaption>"
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'font-size="10" fill="currentColor">{axis}{"".join(lines)}</svg>'
        f"<div class=legend>{legend}{empty}</div></figure>"
    )


CHART_CSS = """
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:10px}
figure.chart{margin:0;background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:8px 10px}
figure.chart figcaption{font-size:12px;color:var(--muted);font-weight:600}
figure.chart svg{width:100%;height:auto;display:block}
.legend{font-size:12px;display:flex;flex-wrap:wrap;gap:4px 12px}
.legend .key i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
"""
