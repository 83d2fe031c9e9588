"""Turning raw benchmark figures into what matters: added latency, ratios, the
issue's targets, and one table (plain text for the terminal, markdown for the
README)."""

from __future__ import annotations

import math
from typing import Any

TARGETS = ("direct", "hxgw", "baseline", "nginx")
PROXIES = ("hxgw", "baseline", "nginx")
HEAD = ["direct", "hxgw", "baseline", "nginx", "hxgw/base", "hxgw/nginx"]


def _num(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _ratio(a: Any, b: Any) -> float | None:
    a, b = _num(a), _num(b)
    return a / b if a is not None and b else None


def derive(results: dict[str, Any]) -> dict[str, Any]:
    """Added latency (through minus direct) and throughput ratios, per case."""
    derived: dict[str, Any] = {"chat": {}, "stream": {}, "embeddings": {}}
    for conc, by_target in results.get("chat", {}).items():
        direct = by_target.get("direct")
        entry: dict[str, Any] = {}
        for proxy in PROXIES:
            through = by_target.get(proxy)
            if not through or not direct:
                continue
            entry[proxy] = {
                f"added_{p}_ms": through[f"{p}_ms"] - direct[f"{p}_ms"]
                for p in ("p50", "p90", "p99")
            }
        entry["hxgw_vs_baseline"] = _ratio(
            _get(by_target, "hxgw", "rps"), _get(by_target, "baseline", "rps")
        )
        entry["hxgw_vs_nginx"] = _ratio(
            _get(by_target, "hxgw", "rps"), _get(by_target, "nginx", "rps")
        )
        entry["baseline_vs_nginx"] = _ratio(
            _get(by_target, "baseline", "rps"), _get(by_target, "nginx", "rps")
        )
        derived["chat"][conc] = entry
    stream = results.get("stream", {})
    if "direct" in stream:
        for proxy in PROXIES:
            if proxy in stream:
                derived["stream"][proxy] = {
                    f"added_{k}": stream[proxy][k] - stream["direct"][k]
                    for k in (
                        "ttfb_p50_ms",
                        "ttfb_p99_ms",
                        "chunk_delay_p50_ms",
                        "chunk_delay_p99_ms",
                    )
                }
    emb = results.get("embeddings", {})
    derived["embeddings"] = {
        "hxgw_vs_baseline": _ratio(
            _get(emb, "hxgw", "mb_per_s"), _get(emb, "baseline", "mb_per_s")
        ),
        "hxgw_vs_nginx": _ratio(_get(emb, "hxgw", "mb_per_s"), _get(emb, "nginx", "mb_per_s")),
    }
    return derived


def _get(by_target: dict[str, Any], target: str, key: str) -> Any:
    return (by_target.get(target) or {}).get(key)


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
    return [
        check("throughput c16, hxgw / baseline", c16.get("hxgw_vs_baseline"), 2.0, "x", True),
        check("throughput c16, hxgw / nginx", _pct(c16.get("hxgw_vs_nginx")), 20, "%", True),
        check(
            "CPU per request c16 (hxgw)",
            _get(chat16, "hxgw", "cpu_us_per_request"),
            150,
            " us",
            False,
        ),
        check("added latency c1 p50", _get(c1, "hxgw", "added_p50_ms"), 0.25, " ms", False),
        check("added latency c1 p99", _get(c1, "hxgw", "added_p99_ms"), 1.0, " ms", False),
        check("added TTFB p99 (stream)", added_stream.get("added_ttfb_p99_ms"), 1.0, " ms", False),
        check("late chunks (> 1 interval) beyond direct", held, 0, "", False),
        check("1,000 streams peak RSS", slow.get("peak_rss_mb"), 300, " MB", False),
    ]


def interference(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per target: how busy other processes kept the proxy's CPU, on average over the
    wrk and stream runs (0 on a quiet machine)."""
    seen: dict[str, list[float]] = {}
    runs = [
        *results.get("chat", {}).values(),
        results.get("stream", {}),
        results.get("embeddings", {}),
    ]
    for by_target in runs:
        for target, result in by_target.items():
            if "proxy_cpu_other_percent" in result:
                seen.setdefault(target, []).append(result["proxy_cpu_other_percent"])
    return {t: {"percent": sum(v) / len(v)} for t, v in seen.items()}


def _pct(value: float | None) -> float | None:
    return None if value is None else 100 * value


# --------------------------------------------------------------------------- table


def _f(value: Any, fmt: str) -> str:
    v = _num(value)
    if v is None:
        return "-"
    if fmt == "int":
        return f"{v:,.0f}"
    if fmt == "ms":
        return f"{v:.2f}"
    if fmt == "+ms":
        return f"{v:+.2f}"
    if fmt == "x":
        return f"{v:.2f}x"
    if fmt == "%":
        return f"{100 * v:.0f}%"
    if fmt == "mb":
        return f"{v:.1f}"
    return f"{v:g}"


def rows(results: dict[str, Any]) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    d = results["derived"]

    def add(
        label: str,
        per: dict[str, Any],
        key: str,
        fmt: str,
        ratios: tuple[Any, Any] = (None, None),
        rfmt: tuple[str, str] = ("x", "%"),
        targets: tuple[str, ...] = TARGETS,
    ) -> None:
        cells = [_f((per.get(t) or {}).get(key), fmt) if t in targets else "" for t in TARGETS]
        cells += [
            _f(ratios[0], rfmt[0]) if ratios[0] is not None else "",
            _f(ratios[1], rfmt[1]) if ratios[1] is not None else "",
        ]
        out.append((label, cells))

    for conc, by_target in results.get("chat", {}).items():
        dc = d["chat"][conc]
        tag = f"chat c={conc}"
        add(f"{tag} req/s", by_target, "rps", "int", (dc["hxgw_vs_baseline"], dc["hxgw_vs_nginx"]))
        for p in ("p50", "p90", "p99"):
            add(f"{tag} {p} ms", by_target, f"{p}_ms", "ms")
        for p in ("p50", "p90", "p99"):
            add(f"{tag} added {p} ms", dc, f"added_{p}_ms", "+ms", targets=PROXIES)
        add(
            f"{tag} CPU us/req",
            by_target,
            "cpu_us_per_request",
            "int",
            (
                _ratio(
                    _get(by_target, "hxgw", "cpu_us_per_request"),
                    _get(by_target, "baseline", "cpu_us_per_request"),
                ),
                _ratio(
                    _get(by_target, "hxgw", "cpu_us_per_request"),
                    _get(by_target, "nginx", "cpu_us_per_request"),
                ),
            ),
            rfmt=("x", "x"),
            targets=PROXIES,
        )
    stream = results.get("stream", {})
    if stream:
        meta = results["meta"]["stream"]
        tag = f"stream {meta['chunks']}x{meta['interval_ms']:g}ms"
        add(f"{tag} TTFB p50 ms", stream, "ttfb_p50_ms", "ms")
        add(f"{tag} TTFB p99 ms", stream, "ttfb_p99_ms", "ms")
        add(f"{tag} added TTFB p50", d["stream"], "added_ttfb_p50_ms", "+ms", targets=PROXIES)
        add(f"{tag} added TTFB p99", d["stream"], "added_ttfb_p99_ms", "+ms", targets=PROXIES)
        add(f"{tag} chunk delay p50", stream, "chunk_delay_p50_ms", "ms")
        add(f"{tag} chunk delay p99", stream, "chunk_delay_p99_ms", "ms")
        add(f"{tag} chunk delay max", stream, "chunk_delay_max_ms", "ms")
        add(
            f"{tag} added chunk p50",
            d["stream"],
            "added_chunk_delay_p50_ms",
            "+ms",
            targets=PROXIES,
        )
        add(
            f"{tag} added chunk p99",
            d["stream"],
            "added_chunk_delay_p99_ms",
            "+ms",
            targets=PROXIES,
        )
        add(f"{tag} late chunks", stream, "late_chunks", "int")
        add(f"{tag} coalesced chunks", stream, "held_back", "int")
    emb = results.get("embeddings", {})
    if emb:
        de = d["embeddings"]
        mb = results["meta"]["embeddings"]["body_mb"]
        add(
            f"embeddings {mb:.1f} MB MB/s",
            emb,
            "mb_per_s",
            "mb",
            (de["hxgw_vs_baseline"], de["hxgw_vs_nginx"]),
        )
        add("embeddings p50 ms", emb, "p50_ms", "ms")
    slow = results.get("slow_streams", {})
    if slow:
        n = results["meta"]["slow_streams"]["streams"]
        tag = f"{n:,} slow streams"
        hx, base = slow.get("hxgw", {}), slow.get("baseline", {})
        for key, label, fmt in (
            ("peak_rss_mb", "peak RSS MB", "mb"),
            ("idle_rss_mb", "idle RSS MB", "mb"),
            ("cpu_percent", "CPU % (whole run)", "mb"),
            ("steady_cpu_percent", "CPU % (all open)", "mb"),
            ("streams_ok", "streams ok", "int"),
            ("ttfb_p50_ms", "TTFB p50 ms", "ms"),
            ("ttfb_p99_ms", "TTFB p99 ms", "ms"),
            ("ttfb_max_ms", "TTFB max ms", "ms"),
        ):
            ratio = _ratio(hx.get(key), base.get(key)) if key != "streams_ok" else None
            add(
                f"{tag} {label}",
                slow,
                key,
                fmt,
                (ratio, None),
                targets=("hxgw", "baseline"),
            )
    workers = results.get("workers", {})
    if workers.get("1") and workers.get("2"):
        one, two = workers["1"]["rps"], workers["2"]["rps"]
        cells = ["", _f(one, "int"), "", "", _f(_ratio(two, one), "x"), ""]
        out.append(("workers=1 c=16 req/s (unpinned; ratio: 2 / 1)", cells))
        out.append(("workers=2 c=16 req/s (unpinned)", ["", _f(two, "int"), "", "", "", ""]))
    routing = results.get("routing", {})
    if not routing.get("rows"):
        out.append(("routing decision us", ["", "n/a", "", "", "", ""]))
    for item in routing.get("rows", []):
        out.append((f"routing: {item['name']} us", ["", _f(item.get("us"), "mb"), "", "", "", ""]))
    other = interference(results)
    if other:
        add("other load on proxy CPU % (mean)", other, "percent", "mb", targets=PROXIES)
    errors = results.get("errors", {})
    if errors:
        add("wrk errors + non-2xx (all runs)", errors, "total", "int")
    return out


def plain(results: dict[str, Any]) -> str:
    table = rows(results)
    label_w = max(len(label) for label, _ in table)
    widths = [max(len(h), *(len(c[i]) for _, c in table)) for i, h in enumerate(HEAD)]
    line = "  ".join([" " * label_w, *(h.rjust(w) for h, w in zip(HEAD, widths, strict=True))])
    lines = [line.rstrip(), "-" * len(line)]
    for label, cells in table:
        row = "  ".join(
            [label.ljust(label_w), *(c.rjust(w) for c, w in zip(cells, widths, strict=True))]
        )
        lines.append(row.rstrip())
    return "\n".join([*header_lines(results), "", *lines, "", *target_lines(results)])


def markdown(results: dict[str, Any]) -> str:
    lines = [f"Measured {machine_line(results)}.", ""]
    lines.append("| case | " + " | ".join(HEAD) + " |")
    lines.append("|---|" + "---:|" * len(HEAD))
    for label, cells in rows(results):
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "| target | goal | measured | |", "|---|---|---:|---|"]
    for t in results.get("targets", []):
        lines.append(f"| {t['target']} | {t['goal']} | {_target_value(t)} | {_mark(t['ok'])} |")
    lines += ["", *(f"{line}" for line in notes(results))]
    return "\n".join(lines)


def machine_line(results: dict[str, Any]) -> str:
    m = results["meta"]["machine"]
    return (
        f"{m['date'][:10]} on {m['cpu_model']} ({m['cores']} cores), Linux {m['kernel']}, "
        f"Python {m['python']}, aiohttp {m['aiohttp']}, uvloop {m['uvloop']}, "
        f"nginx {m.get('nginx') or 'n/a'}, wrk {m.get('wrk') or 'n/a'}; hxgw {m['hxgw']} ({m['git']})"
        f"; `make bench`{' --quick' if results['meta']['quick'] else ''}"
    )


def notes(results: dict[str, Any]) -> list[str]:
    meta = results["meta"]
    out = [
        f"- Setup: {meta['pinning']}.",
        f"- Non-streaming upstream: {meta['chat_upstream_note']}.",
        f"- Chat rows: wrk -t1, {meta['settings']['chat_seconds']} s per figure after a"
        f" {meta['settings']['warmup_seconds']} s warm-up"
        + (f", best of {meta['rounds']} rounds" if meta.get("rounds", 1) > 1 else "")
        + f"; streams: {meta['stream']['streams']} streams, {meta['stream']['concurrency']} at a"
        f" time; embeddings: wrk -c{meta['embeddings']['connections']}.",
        "- hxgw/base = hxgw over the obvious aiohttp proxy (bench/baseline_proxy.py); "
        "hxgw/nginx = hxgw's share of nginx's figure (for CPU rows: the ratio).",
        f"- Background load from other processes during the run: {meta['background_note']};"
        " 'other load on proxy CPU' is how busy they kept the proxy's own CPU during the"
        " measurements (0 on a quiet machine).",
    ]
    routing = results.get("routing", {})
    if routing:
        out.append(
            f"- Routing rows: in-process, median of 5 batches, via {routing.get('source', 'n/a')}"
            " (the hook: `hxgw.routing.learned.bench.routing_timings(iterations)`)."
        )
    if meta.get("warnings"):
        out += [f"- Note: {w}" for w in meta["warnings"]]
    return out


def header_lines(results: dict[str, Any]) -> list[str]:
    return [f"hxgw benchmark: {machine_line(results)}", *notes(results)]


def target_lines(results: dict[str, Any]) -> list[str]:
    out = ["targets (issue 6):"]
    for t in results.get("targets", []):
        out.append(
            f"  {_mark(t['ok']):4} {t['target']:34} {t['goal']:>10}   measured {_target_value(t)}"
        )
    return out


def _target_value(t: dict[str, Any]) -> str:
    v = _num(t["value"])
    return "n/a" if v is None else f"{v:.2f}{t['unit']}"


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("ok" if ok else "MISS")
