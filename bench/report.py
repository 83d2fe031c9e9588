"""Turning raw benchmark figures into what matters: added latency, ratios, the
issue's targets, and one table (plain text for the terminal, markdown for the
README).

A run with `--compare REV` has a column `hxgw@REV` (the label is in
`meta.compare.label`) beside `hxgw`, and a last column `new/old`: hxgw over
hxgw@REV for figures, new minus old (in ms) for added latencies."""

from __future__ import annotations

import math
from typing import Any

TARGETS = ("direct", "hxgw", "baseline", "nginx")
PROXIES = ("hxgw", "baseline", "nginx")
HEAD = ["direct", "hxgw", "baseline", "nginx", "hxgw/base", "hxgw/nginx"]
NEW_OLD = "new/old"
C16_KEEP = 2 / 3  # issue 18: c=16 req/s may drop by at most a third
TTFB_GROWTH_MS = 0.5  # issue 18: added TTFB p50 may grow by at most 0.5 ms


def old_label(results: dict[str, Any]) -> str | None:
    """The column of the --compare revision (e.g. 'hxgw@7cb0bba'), or None."""
    return (results.get("meta", {}).get("compare") or {}).get("label")


def targets_of(results: dict[str, Any]) -> tuple[str, ...]:
    old = old_label(results)
    return TARGETS if old is None else ("direct", "hxgw", old, *TARGETS[2:])


def proxies_of(results: dict[str, Any]) -> tuple[str, ...]:
    return targets_of(results)[1:]


def head(results: dict[str, Any]) -> list[str]:
    return [*targets_of(results), *HEAD[4:], *([NEW_OLD] if old_label(results) else [])]


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
    proxies = proxies_of(results)
    for conc, by_target in results.get("chat", {}).items():
        direct = by_target.get("direct")
        entry: dict[str, Any] = {}
        for proxy in proxies:
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
        for proxy in proxies:
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
    old = old_label(results)
    if old:
        derived["compare"] = _compare(results, derived, old)
    return derived


def _compare(results: dict[str, Any], derived: dict[str, Any], old: str) -> dict[str, Any]:
    """New (hxgw) against old (hxgw@REV): ratios of figures, differences of added
    latencies; for chat, also the ratio of each round (measured next to each other)."""
    out: dict[str, Any] = {"label": old, "chat": {}}
    for conc, by_target in results.get("chat", {}).items():
        new_r, old_r = by_target.get("hxgw") or {}, by_target.get(old) or {}
        paired = [
            n / o
            for n, o in zip(new_r.get("rounds_rps", []), old_r.get("rounds_rps", []), strict=False)
            if o
        ]
        dc = derived["chat"].get(conc, {})
        out["chat"][conc] = {
            "rps_ratio": _ratio(new_r.get("rps"), old_r.get("rps")),
            "rps_ratio_per_round": [round(r, 4) for r in paired],
            "rps_ratio_median_round": sorted(paired)[len(paired) // 2] if paired else None,
            "cpu_ratio": _ratio(new_r.get("cpu_us_per_request"), old_r.get("cpu_us_per_request")),
            "added_p50_ms_growth": _diff(
                _get(dc, "hxgw", "added_p50_ms"), _get(dc, old, "added_p50_ms")
            ),
        }
    ds = derived.get("stream", {})
    if "hxgw" in ds and old in ds:
        out["stream"] = {
            f"{k}_growth": ds["hxgw"][k] - ds[old][k]
            for k in ("added_ttfb_p50_ms", "added_ttfb_p99_ms", "added_chunk_delay_p50_ms")
        }
    emb = results.get("embeddings", {})
    out["embeddings_ratio"] = _ratio(_get(emb, "hxgw", "mb_per_s"), _get(emb, old, "mb_per_s"))
    slow = results.get("slow_streams", {})
    out["slow_streams"] = {
        k: _ratio(_get(slow, "hxgw", k), _get(slow, old, k))
        for k in ("peak_rss_mb", "idle_rss_mb", "cpu_percent", "steady_cpu_percent")
    }
    ab = results.get("ab_cpu")
    if ab:
        out["ab_cpu_ratio"] = ab.get("ratio")
    return out


def _diff(a: Any, b: Any) -> float | None:
    a, b = _num(a), _num(b)
    return a - b if a is not None and b is not None else None


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
    issue18: list[dict[str, Any]] = []
    cmp = d.get("compare")
    if cmp:
        old = cmp["label"]
        issue18 = [
            check(
                f"issue 18: c16 req/s, hxgw / {old}",
                _pct((cmp["chat"].get("16") or {}).get("rps_ratio")),
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
    if fmt == "ratio":
        return f"{v:.3f}"
    return f"{v:g}"


def _new_old(per: dict[str, Any], key: str, fmt: str, old: str | None) -> str:
    """The last column of a --compare run: new/old as a ratio, or for added latencies
    (fmt '+ms') new minus old in ms."""
    if old is None:
        return ""
    new_v, old_v = _get(per, "hxgw", key), _get(per, old, key)
    if fmt == "+ms":
        diff = _diff(new_v, old_v)
        return "" if diff is None else f"{diff:+.2f} ms"
    return _f(_ratio(new_v, old_v), "ratio")


def rows(results: dict[str, Any]) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    d = results["derived"]
    cols = targets_of(results)
    proxies = proxies_of(results)
    old = old_label(results)
    names = head(results)

    def add(
        label: str,
        per: dict[str, Any],
        key: str,
        fmt: str,
        ratios: tuple[Any, Any] = (None, None),
        rfmt: tuple[str, str] = ("x", "%"),
        targets: tuple[str, ...] | None = None,
    ) -> None:
        shown = cols if targets is None else targets
        cells = [_f((per.get(t) or {}).get(key), fmt) if t in shown else "" for t in cols]
        cells += [
            _f(ratios[0], rfmt[0]) if ratios[0] is not None else "",
            _f(ratios[1], rfmt[1]) if ratios[1] is not None else "",
        ]
        if old:
            cells.append(_new_old(per, key, fmt, old) if old in shown else "")
        out.append((label, cells))

    def cells_at(values: dict[str, str]) -> list[str]:
        """A row of free cells: column name -> text."""
        return [values.get(name, "") for name in names]

    for conc, by_target in results.get("chat", {}).items():
        dc = d["chat"][conc]
        tag = f"chat c={conc}"
        add(f"{tag} req/s", by_target, "rps", "int", (dc["hxgw_vs_baseline"], dc["hxgw_vs_nginx"]))
        for p in ("p50", "p90", "p99"):
            add(f"{tag} {p} ms", by_target, f"{p}_ms", "ms")
        for p in ("p50", "p90", "p99"):
            add(f"{tag} added {p} ms", dc, f"added_{p}_ms", "+ms", targets=proxies)
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
            targets=proxies,
        )
        cmp_c = (d.get("compare") or {}).get("chat", {}).get(conc)
        if cmp_c and len(cmp_c.get("rps_ratio_per_round") or []) > 1:
            per_round = " ".join(f"{r:.2f}" for r in cmp_c["rps_ratio_per_round"])
            out.append((f"{tag} req/s new/old, each round", cells_at({NEW_OLD: per_round})))
    stream = results.get("stream", {})
    if stream:
        meta = results["meta"]["stream"]
        tag = f"stream {meta['chunks']}x{meta['interval_ms']:g}ms"
        add(f"{tag} TTFB p50 ms", stream, "ttfb_p50_ms", "ms")
        add(f"{tag} TTFB p99 ms", stream, "ttfb_p99_ms", "ms")
        add(f"{tag} added TTFB p50", d["stream"], "added_ttfb_p50_ms", "+ms", targets=proxies)
        add(f"{tag} added TTFB p99", d["stream"], "added_ttfb_p99_ms", "+ms", targets=proxies)
        add(f"{tag} chunk delay p50", stream, "chunk_delay_p50_ms", "ms")
        add(f"{tag} chunk delay p99", stream, "chunk_delay_p99_ms", "ms")
        add(f"{tag} chunk delay max", stream, "chunk_delay_max_ms", "ms")
        add(
            f"{tag} added chunk p50",
            d["stream"],
            "added_chunk_delay_p50_ms",
            "+ms",
            targets=proxies,
        )
        add(
            f"{tag} added chunk p99",
            d["stream"],
            "added_chunk_delay_p99_ms",
            "+ms",
            targets=proxies,
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
        slow_targets = ("hxgw", old, "baseline") if old else ("hxgw", "baseline")
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
                targets=slow_targets,
            )
    workers = results.get("workers", {})
    if workers.get("1") and workers.get("2"):
        one, two = workers["1"]["rps"], workers["2"]["rps"]
        cells = cells_at({"hxgw": _f(one, "int"), "hxgw/base": _f(_ratio(two, one), "x")})
        out.append(("workers=1 c=16 req/s (unpinned; ratio: 2 / 1)", cells))
        out.append(("workers=2 c=16 req/s (unpinned)", cells_at({"hxgw": _f(two, "int")})))
    ab = results.get("ab_cpu")
    if ab and old:
        add(
            f"CPU us/req c=16, alternating {ab['turns']} x 1 s turns",
            ab,
            "cpu_us_per_request",
            "int",
            targets=("hxgw", old),
        )
    routing = results.get("routing", {})
    if not routing.get("rows"):
        out.append(("routing decision us", cells_at({"hxgw": "n/a"})))
    for item in routing.get("rows", []):
        out.append((f"routing: {item['name']} us", cells_at({"hxgw": _f(item.get("us"), "mb")})))
    other = interference(results)
    if other:
        add("other load on proxy CPU % (mean)", other, "percent", "mb", targets=proxies)
    errors = results.get("errors", {})
    if errors:
        add("wrk errors + non-2xx (all runs)", errors, "total", "int")
    return out


def plain(results: dict[str, Any]) -> str:
    table = rows(results)
    names = head(results)
    label_w = max(len(label) for label, _ in table)
    widths = [max(len(h), *(len(c[i]) for _, c in table)) for i, h in enumerate(names)]
    line = "  ".join([" " * label_w, *(h.rjust(w) for h, w in zip(names, widths, strict=True))])
    lines = [line.rstrip(), "-" * len(line)]
    for label, cells in table:
        row = "  ".join(
            [label.ljust(label_w), *(c.rjust(w) for c, w in zip(cells, widths, strict=True))]
        )
        lines.append(row.rstrip())
    return "\n".join([*header_lines(results), "", *lines, "", *target_lines(results)])


def markdown(results: dict[str, Any]) -> str:
    lines = [f"Measured {machine_line(results)}.", ""]
    names = head(results)
    lines.append("| case | " + " | ".join(names) + " |")
    lines.append("|---|" + "---:|" * len(names))
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
    cmp = meta.get("compare")
    if cmp:
        rounds = meta.get("rounds", 1)
        out.append(
            f"- {cmp['label']} = hxgw at {cmp['revision']} ({cmp['commit']}): its `hxgw` package"
            " exported with `git archive`, run through PYTHONPATH with the same venv and pinned"
            " to the same CPU. new/old = hxgw over it (for added latencies: new minus old, ms)."
            " Chat and streams alternate the two's order each round"
            + (f" ({rounds} rounds; stream samples pooled over them)" if rounds > 1 else "")
            + "; the alternating CPU row runs both in 1 s turns (bench/ab.py's way)."
        )
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
    extra = ", and issue 18's before/after" if old_label(results) else ""
    out = [f"targets (issue 6{extra}):"]
    for t in results.get("targets", []):
        out.append(
            f"  {_mark(t['ok']):4} {t['target']:44} {t['goal']:>10}   measured {_target_value(t)}"
        )
    return out


def _target_value(t: dict[str, Any]) -> str:
    v = _num(t["value"])
    return "n/a" if v is None else f"{v:.2f}{t['unit']}"


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("ok" if ok else "MISS")
