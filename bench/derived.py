"""The derived figures, from a run's raw ones: added latency (through a proxy minus
direct), throughput ratios, with `--compare` new against old, and how busy other
processes kept the proxy's CPU. run.py stores `derive`'s answer under "derived"."""

from __future__ import annotations

from typing import Any

from columns import diff_of, field, old_label, proxies_of, ratio_of


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
        entry["hxgw_vs_baseline"] = ratio_of(
            field(by_target, "hxgw", "rps"), field(by_target, "baseline", "rps")
        )
        entry["hxgw_vs_nginx"] = ratio_of(
            field(by_target, "hxgw", "rps"), field(by_target, "nginx", "rps")
        )
        entry["baseline_vs_nginx"] = ratio_of(
            field(by_target, "baseline", "rps"), field(by_target, "nginx", "rps")
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
        "hxgw_vs_baseline": ratio_of(
            field(emb, "hxgw", "mb_per_s"), field(emb, "baseline", "mb_per_s")
        ),
        "hxgw_vs_nginx": ratio_of(field(emb, "hxgw", "mb_per_s"), field(emb, "nginx", "mb_per_s")),
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
            "rps_ratio": ratio_of(new_r.get("rps"), old_r.get("rps")),
            "rps_ratio_per_round": [round(r, 4) for r in paired],
            "rps_ratio_median_round": sorted(paired)[len(paired) // 2] if paired else None,
            "cpu_ratio": ratio_of(new_r.get("cpu_us_per_request"), old_r.get("cpu_us_per_request")),
            "added_p50_ms_growth": diff_of(
                field(dc, "hxgw", "added_p50_ms"), field(dc, old, "added_p50_ms")
            ),
        }
    ds = derived.get("stream", {})
    if "hxgw" in ds and old in ds:
        out["stream"] = {
            f"{k}_growth": ds["hxgw"][k] - ds[old][k]
            for k in ("added_ttfb_p50_ms", "added_ttfb_p99_ms", "added_chunk_delay_p50_ms")
        }
    emb = results.get("embeddings", {})
    out["embeddings_ratio"] = ratio_of(field(emb, "hxgw", "mb_per_s"), field(emb, old, "mb_per_s"))
    slow = results.get("slow_streams", {})
    out["slow_streams"] = {
        k: ratio_of(field(slow, "hxgw", k), field(slow, old, k))
        for k in ("peak_rss_mb", "idle_rss_mb", "cpu_percent", "steady_cpu_percent")
    }
    ab = results.get("ab_cpu")
    if ab:
        out["ab_cpu_ratio"] = ab.get("ratio")
    return out


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
