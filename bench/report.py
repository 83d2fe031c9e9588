"""The benchmark's report: the table with its header and notes, and the targets,
as plain text for the terminal or as markdown for the README."""

from __future__ import annotations

from typing import Any

from columns import head, num, old_label
from table import rows


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
    v = num(t["value"])
    return "n/a" if v is None else f"{v:.2f}{t['unit']}"


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("ok" if ok else "MISS")
