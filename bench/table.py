"""The table's rows, one per figure: a label and a cell for each column (see
columns.head), formatted; the plain-text and markdown renderings share them."""

from __future__ import annotations

from typing import Any

from columns import NEW_OLD, diff_of, field, head, num, old_label, proxies_of, ratio_of, targets_of
from derived import interference

_FORMATS = {
    "int": "{:,.0f}",
    "ms": "{:.2f}",
    "+ms": "{:+.2f}",
    "x": "{:.2f}x",
    "%": "{:.0%}",
    "mb": "{:.1f}",
    "ratio": "{:.3f}",
}
"""How each kind of figure is written; any other as `{:g}`."""


def _f(value: Any, fmt: str) -> str:
    v = num(value)
    return "-" if v is None else _FORMATS.get(fmt, "{:g}").format(v)


def _new_old(per: dict[str, Any], key: str, fmt: str, old: str | None) -> str:
    """The last column of a --compare run: new/old as a ratio, or for added latencies
    (fmt '+ms') new minus old in ms."""
    if old is None:
        return ""
    new_v, old_v = field(per, "hxgw", key), field(per, old, key)
    if fmt == "+ms":
        diff = diff_of(new_v, old_v)
        return "" if diff is None else f"{diff:+.2f} ms"
    return _f(ratio_of(new_v, old_v), "ratio")


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
                ratio_of(
                    field(by_target, "hxgw", "cpu_us_per_request"),
                    field(by_target, "baseline", "cpu_us_per_request"),
                ),
                ratio_of(
                    field(by_target, "hxgw", "cpu_us_per_request"),
                    field(by_target, "nginx", "cpu_us_per_request"),
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
            ratio = ratio_of(hx.get(key), base.get(key)) if key != "streams_ok" else None
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
        cells = cells_at({"hxgw": _f(one, "int"), "hxgw/base": _f(ratio_of(two, one), "x")})
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
