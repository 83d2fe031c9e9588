"""/status.json with `--workers N`: the workers' documents, made the daemon's one.

Counts are added up, each model's health figures (its error rate and moving averages
of latency) weighed by the requests each worker sent it: the figures of whichever worker
answered would make a model's row flip from one refresh to the next, its error rate
at odds with its requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_WORSE = {"closed": 0, "half_open": 1, "open": 2}


def total_status(own: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """/status.json over the workers: the daemon's request totals, each model's requests
    and requests in flight, and each upstream's saturation, added up; each model's error
    rate and latencies over the workers, weighed by the requests each served; each model's
    circuit at its worst in any worker (as /metrics has it); and the latest reload any worker
    took part in (one started again since has seen none); the ledgers' spools added up,
    and the limits and key stores down when any worker finds them so (as /metrics has
    them)."""
    requests = dict(own["requests"])
    rows: dict[str, list[Mapping[str, Any]]] = {m["name"]: [m] for m in own["models"]}
    upstreams = {u["name"]: dict(u) for u in own["upstreams"]}
    last_reload = own.get("last_reload")
    ledger = dict(own["ledger"]) if own.get("ledger") else None
    limits_store = dict(own["limits_store"]) if own.get("limits_store") else None
    key_store = own.get("key_store")
    for status in others:
        # Each worker has its own rows and its own connection to the limits store.
        if ledger is not None and status.get("ledger"):
            for field in ledger:
                theirs_too = status["ledger"].get(field, 0)
                if field == "spool_bytes":  # the shared directory's size, not a share of it
                    ledger[field] = max(ledger[field], theirs_too)
                else:
                    ledger[field] += theirs_too
        their_keys = status.get("key_store")
        if key_store is not None and their_keys is not None and not their_keys["reachable"]:
            key_store = their_keys
        theirs = status.get("limits_store")
        if limits_store is not None and theirs:
            limits_store["reachable"] = limits_store["reachable"] and theirs["reachable"]
            if "failures" in limits_store:
                limits_store["failures"] += theirs.get("failures", 0)
        reload = status.get("last_reload")
        if reload and (last_reload is None or (reload["at"] or "") > (last_reload["at"] or "")):
            last_reload = reload
        for upstream in status.get("upstreams", ()):
            mine = upstreams.get(upstream["name"])
            if mine is not None:
                for field in ("in_use", "cap", "queued", "shed"):
                    mine[field] = mine.get(field, 0) + upstream.get(field, 0)
        for field in ("total", "per_second", "inflight", "active_streams"):
            requests[field] = round(requests[field] + status["requests"][field], 2)
        for model in status["models"]:
            if model["name"] in rows:
                rows[model["name"]].append(model)
    return {
        **own,
        "last_reload": last_reload,
        "requests": requests,
        "models": [_model(each) for each in rows.values()],
        "upstreams": list(upstreams.values()),
        "ledger": ledger,
        "limits_store": limits_store,
        "key_store": key_store,
    }


_WEIGHED = {"error_rate": 4, "ewma_ttfb_ms": 1, "ewma_plain_ms": 1, "ewma_latency_ms": 1}
"""Each figure weighed by requests, and the places /status.json rounds it to."""


def _model(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """A model's row for the daemon, from each worker's (this one's first). A row without
    a figure (a worker gone, whose counts alone are kept) weighs nothing in it."""
    summed = dict(rows[0])
    summed["requests"] = sum(row["requests"] for row in rows)
    summed["inflight"] = sum(row["inflight"] for row in rows)
    for field, places in _WEIGHED.items():
        weighed = [
            (row[field], row["requests"])
            for row in rows
            if row.get(field) is not None and row["requests"]
        ]
        if weighed:
            total = sum(weight for _, weight in weighed)
            summed[field] = round(sum(value * weight for value, weight in weighed) / total, places)
    summed["stalled"] = any(row.get("stalled") for row in rows)
    circuits = [row["circuit"] for row in rows if row.get("circuit")]
    if circuits:
        summed["circuit"] = max(circuits, key=lambda circuit: _WORSE.get(circuit, 0))
    return summed
