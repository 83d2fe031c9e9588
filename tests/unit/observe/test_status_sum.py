"""/status.json with workers: one document for the daemon, whichever worker answers."""

from __future__ import annotations

from typing import Any

from hxgw.observe.status_sum import total_status


def _worker(*models: dict[str, Any]) -> dict[str, Any]:
    return {
        "requests": {"total": 0, "per_second": 0.0, "inflight": 0, "active_streams": 0},
        "models": [{"inflight": 0, "circuit": "closed", **m} for m in models],
        "upstreams": [],
    }


def _model(doc: dict[str, Any]) -> dict[str, Any]:
    (model,) = doc["models"]
    return model


def test_a_model_s_error_rate_and_latencies_are_weighed_by_each_worker_s_requests():
    # They had been those of whichever worker answered: a row that flipped each refresh.
    one = _worker({"name": "a", "requests": 3, "error_rate": 0.0, "ewma_ttfb_ms": 10.0,
                   "ewma_latency_ms": 100.0})
    two = _worker({"name": "a", "requests": 1, "error_rate": 1.0, "ewma_ttfb_ms": 50.0,
                   "ewma_latency_ms": 500.0})
    summed = _model(total_status(one, [two]))
    assert summed["requests"] == 4
    assert (summed["error_rate"], summed["ewma_ttfb_ms"], summed["ewma_latency_ms"]) == (
        0.25, 20.0, 200.0)
    assert _model(total_status(two, [one])) == summed  # whichever worker answers


def test_a_worker_that_sent_a_model_nothing_leaves_its_figures_as_the_others_have_them():
    served = _worker({"name": "a", "requests": 2, "error_rate": 0.5, "ewma_ttfb_ms": 8.0,
                      "ewma_latency_ms": None})
    idle = _worker({"name": "a", "requests": 0, "error_rate": 0.0, "ewma_ttfb_ms": None,
                    "ewma_latency_ms": None})
    for own, other in ((served, idle), (idle, served)):
        summed = _model(total_status(own, [other]))
        assert (summed["error_rate"], summed["ewma_ttfb_ms"], summed["ewma_latency_ms"]) == (
            0.5, 8.0, None)


def test_a_gone_worker_s_counts_weigh_nothing_in_the_figures_whatever_the_order():
    # A worker gone keeps its counts alone: its requests had diluted the next figures.
    live = _worker({"name": "a", "requests": 10, "error_rate": 1.0, "ewma_ttfb_ms": 500.0,
                    "ewma_latency_ms": None})
    gone = _worker({"name": "a", "requests": 1000})
    own = _worker({"name": "a", "requests": 10, "error_rate": 0.0, "ewma_ttfb_ms": 100.0,
                   "ewma_latency_ms": None})
    for others in ([live, gone], [gone, live]):
        summed = _model(total_status(own, others))
        assert (summed["requests"], summed["error_rate"], summed["ewma_ttfb_ms"]) == (
            1020, 0.5, 300.0)


def test_the_shared_spool_is_counted_once_and_the_rows_of_every_worker_added_up():
    # The workers' spool is one directory: each measures all of it.
    own, other = _worker(), _worker()
    own["ledger"] = {"spool_bytes": 4096, "rows_spooled": 3}
    other["ledger"] = {"spool_bytes": 4096, "rows_spooled": 2}
    assert total_status(own, [other])["ledger"] == {"spool_bytes": 4096, "rows_spooled": 5}


def test_a_key_store_one_worker_cannot_read_is_shown_unreachable():
    own, other = _worker(), _worker()
    own["key_store"] = {"reachable": True}
    other["key_store"] = {"reachable": False, "error": "database is locked"}
    assert total_status(own, [other])["key_store"] == other["key_store"]
