"""The status page: /status.json rendered as one small, self-contained HTML page.

No script, no external asset, no build step: inline CSS only, and a
Content-Security-Policy that forbids anything else. Every value from the
status passes through `html.escape`, and CSS class names come only from fixed
tables here, never from the status, so a model named `<script>` stays text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hxgw.server.cells import (
    badge,
    card,
    duration,
    head,
    number,
    percent,
    table,
    text,
    when,
)
from hxgw.server.charts import CHART_CSS
from hxgw.server.usage_section import render_usage

REFRESH_SECONDS = 5
ARROW = " \u2192 "

_CIRCUIT_CLASS = {"closed": "ok", "stalled": "warn", "half_open": "warn", "open": "bad"}
_RELOAD_CLASS = {"ok": "ok", "rejected": "bad", "failed": "bad", "none": "muted"}

_CSS = """
:root{color-scheme:light dark;--fg:#1d2330;--muted:#6b7385;--bg:#f6f7f9;--card:#fff;
--line:#e2e5ea;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ef;--muted:#9aa3b5;--bg:#14171c;
--card:#1d2128;--line:#2e343e}}
*{box-sizing:border-box}
body{margin:0;padding:24px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;
color:var(--fg);background:var(--bg)}
header{display:flex;align-items:baseline;gap:12px;flex-wrap:wrap;margin-bottom:16px}
h1{font-size:20px;margin:0}h2{font-size:15px;margin:24px 0 8px}
.muted{color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.card .label{color:var(--muted);font-size:12px}.card .value{font-size:18px;font-weight:600}
.card .note{color:var(--muted);font-size:12px;overflow-wrap:anywhere}
table{width:100%;border-collapse:collapse;background:var(--card);border:1px solid var(--line);
border-radius:8px;overflow:hidden}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line)}
th{font-size:12px;color:var(--muted);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr:last-child td{border-bottom:0}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;
color:#fff;background:var(--muted)}
.badge.ok{background:var(--ok)}.badge.warn{background:var(--warn)}.badge.bad{background:var(--bad)}
tr.bad td{background:color-mix(in srgb,var(--bad) 8%,transparent)}
code{font:12px ui-monospace,monospace}
footer{margin-top:20px;color:var(--muted);font-size:12px}
"""


def render_status_html(status: Mapping[str, Any]) -> str:
    """The whole page for one /status.json document."""
    version = text(status.get("version"))
    draining = bool(status.get("draining"))
    if draining:
        state = badge("draining", "warn")
    elif status.get("ready") is False:  # /readyz's 503, and why, at the top of the page
        state = badge("not ready", "bad") + "".join(
            f"<span class=muted>{text(reason)}</span>" for reason in status.get("reasons") or []
        )
    else:
        state = badge("serving", "ok")
    return "".join(
        [
            "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>",
            '<meta name=viewport content="width=device-width,initial-scale=1">',
            f'<meta http-equiv=refresh content="{REFRESH_SECONDS}">',
            "<meta http-equiv=Content-Security-Policy "
            "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
            f"<title>hxgw {version} status</title><style>{_CSS}{CHART_CSS}</style></head><body>",
            f"<header><h1>hxgw status</h1>{state}<span class=muted>version {version}",
            f" &middot; listening on {text(status.get('listen'))}</span></header>",
            _cards(status),
            "<h2>Models</h2>",
            _models(status.get("models") or []),
            "<h2>Groups</h2>",
            _groups(status.get("groups") or []),
            "<h2>Upstreams</h2>",
            _upstreams(status.get("upstreams") or []),
            render_usage(status.get("usage")),
            f"<footer>Refreshes every {REFRESH_SECONDS} s. The same as JSON: ",
            "<code>/status.json</code></footer></body></html>\n",
        ]
    )


def _cards(status: Mapping[str, Any]) -> str:
    requests = status.get("requests") or {}
    reload = status.get("last_reload") or {}
    result = str(reload.get("result", "none"))
    upstreams = status.get("upstreams") or []
    up = sum(1 for u in upstreams if u.get("reachable") is True)
    cards = [
        ("Uptime", duration(status.get("uptime_seconds")), ""),
        ("Config generation", text(status.get("config_generation")), ""),
        (
            "Last reload",
            badge(result, _RELOAD_CLASS.get(result, "muted")),
            text(reload.get("message") or "") + when(reload.get("at")),
        ),
        ("Upstreams reachable", f"{up}/{len(upstreams)}", ""),
        ("Requests / s", number(requests.get("per_second"), 2), ""),
        ("Requests", number(requests.get("total"), 0), ""),
        ("In flight", number(requests.get("inflight"), 0), ""),
        ("Active streams", number(requests.get("active_streams"), 0), ""),
        _ledger_card(status.get("ledger")),
        _limits_store_card(status.get("limits_store") or {}),
        _key_store_card(status.get("key_store")),
    ]
    return "<section class=cards>" + "".join(card(*fields) for fields in cards) + "</section>"


def _ledger_card(ledger: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """Rows waiting on disk mean the usage store is away; dropped ones are lost."""
    if not ledger:
        return ("Usage ledger", badge("off", "muted"), "")
    spooled, dropped = ledger.get("spool_bytes") or 0, ledger.get("rows_dropped") or 0
    css = "bad" if dropped else "warn" if spooled else "ok"
    word = "dropping" if dropped else "spooling" if spooled else "writing"
    note = f"spool {number(spooled, 0)} bytes, {number(dropped, 0)} rows dropped"
    return ("Usage ledger", badge(word, css), note)


def _limits_store_card(store: Mapping[str, Any]) -> tuple[str, str, str]:
    kind, reachable = text(store.get("kind")), store.get("reachable")
    reach = badge("up", "ok") if reachable is not False else badge("down", "bad")
    failures = store.get("failures")
    note = kind if failures is None else f"{kind}, {number(failures, 0)} failed calls"
    return ("Limits store", reach, note)


def _key_store_card(store: Mapping[str, Any] | None) -> tuple[str, str, str]:
    if store is None:
        return ("Key store", badge("none", "muted"), "")
    if store.get("reachable"):
        return ("Key store", badge("read", "ok"), "")
    return ("Key store", badge("unread", "bad"), "newer stored keys get 503")


def _models(models: Iterable[Mapping[str, Any]]) -> str:
    columns = head(
        "Model",
        "Upstream model",
        "Groups",
        "Circuit",
        ("TTFB ms", "num"),
        ("Latency ms", "num"),
        ("Errors %", "num"),
        ("In flight", "num"),
        ("Requests", "num"),
    )
    rows = []
    for model in models:
        circuit = str(model.get("circuit", ""))
        if circuit == "closed" and model.get("stalled"):
            circuit = "stalled"  # skipped all the same
        css = _CIRCUIT_CLASS.get(circuit, "muted")
        rows.append(
            f'<tr class="{css}" data-model="{text(model.get("name"))}" '
            f'data-circuit="{text(circuit)}">'
            f"<td><b>{text(model.get('name'))}</b></td>"
            f"<td><code>{text(model.get('upstream_model'))}</code></td>"
            f"<td>{text(', '.join(str(g) for g in model.get('groups') or []))}</td>"
            f"<td>{badge(circuit.replace('_', '-'), css)}</td>"
            f"<td class=num>{number(model.get('ewma_ttfb_ms'), 1)}</td>"
            f"<td class=num>{number(model.get('ewma_latency_ms'), 1)}</td>"
            f"<td class=num>{percent(model.get('error_rate'))}</td>"
            f"<td class=num>{number(model.get('inflight'), 0)}</td>"
            f"<td class=num>{number(model.get('requests'), 0)}</td></tr>"
        )
    return table(columns, rows, 9, "no models")


def _groups(groups: Iterable[Mapping[str, Any]]) -> str:
    rows = [
        f'<tr data-group="{text(group.get("name"))}"><td><b>{text(group.get("name"))}</b></td>'
        f"<td>{text(group.get('strategy'))}</td>"
        f"<td>{text(ARROW.join(str(m) for m in group.get('models') or []))}</td></tr>"
        for group in groups
    ]
    return table(head("Group", "Strategy", "Models, in order"), rows, 3, "no groups")


def _upstreams(upstreams: Iterable[Mapping[str, Any]]) -> str:
    rows = []
    for upstream in upstreams:
        reachable = upstream.get("reachable")
        if reachable is None:
            reach = badge("unknown", "muted")
        else:
            reach = badge("up", "ok") if reachable else badge("down", "bad")
        ago = upstream.get("last_ok_seconds_ago")
        in_use, cap = upstream.get("in_use", 0), upstream.get("cap", 0)
        shed = upstream.get("shed", 0)
        full = badge("full", "bad") if cap and in_use >= cap else ""
        lacks = ", ".join(upstream.get("missing_models") or ())  # the registry's, unlisted
        note = upstream.get("last_error") or (f"does not list {lacks}" if lacks else None)
        rows.append(
            f'<tr data-upstream="{text(upstream.get("name"))}">'
            f"<td><b>{text(upstream.get('name'))}</b></td>"
            f"<td><code>{text(upstream.get('url'))}</code></td><td>{reach}</td>"
            f"<td>{text(note)}</td>"
            f"<td class=num>{'never' if ago is None else duration(ago) + ' ago'}</td>"
            f"<td class=num>{text(in_use)} / {text(cap)} {full}</td>"
            f"<td class=num>{text(upstream.get('queued', 0))}</td>"
            f"<td class=num>{text(shed)}</td></tr>"
        )
    columns = head(
        "Upstream",
        "URL",
        "Reachable",
        "Last error",
        ("Last answered", "num"),
        ("In use / cap", "num"),
        ("Queued", "num"),
        ("Shed", "num"),
    )
    return table(columns, rows, 8, "no upstreams")
