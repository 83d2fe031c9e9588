"""With workers, the daemon's figures are the sum over them, and over their earlier runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hxgw.observe.workers import WorkerFigures, added


def _figures(requests: float, inflight: float) -> dict[str, Any]:
    return {
        "metrics": [
            {"name": "hxgw_requests", "documentation": "", "type": "counter", "unit": "",
             "samples": [["hxgw_requests_total", {"endpoint": "chat"}, requests]]},
            {"name": "hxgw_inflight", "documentation": "", "type": "gauge", "unit": "",
             "samples": [["hxgw_inflight", {}, inflight]]},
        ],
        "status": {
            "requests": {"total": requests, "per_second": 3.0, "inflight": inflight,
                         "active_streams": 1},
            "models": [{"name": "alpha", "requests": requests, "inflight": inflight}],
            "upstreams": [{"name": "default", "in_use": 2, "cap": 8, "queued": 0, "shed": 1}],
        },
    }


def _run_of_worker_0(directory: Path, requests: float) -> WorkerFigures:
    """Worker 0 started again after a run that served `requests` and died."""
    (directory / "figures-0.json").write_text(json.dumps(_figures(requests, inflight=2)))
    figures = WorkerFigures(directory, "0")
    figures.retire_previous()
    return figures


def test_the_counts_of_a_workers_earlier_runs_stay_in_the_sum(tmp_path: Path):
    _run_of_worker_0(tmp_path, 30)
    figures = _run_of_worker_0(tmp_path, 12)
    assert not (tmp_path / "figures-0.json").exists()
    watcher = WorkerFigures(tmp_path, "1")
    (retired,) = watcher.others()
    (family,) = retired["metrics"]  # the gauge went with the process
    assert family["samples"] == [["hxgw_requests_total", {"endpoint": "chat"}, 42]]
    assert retired["status"]["requests"] == {
        "total": 42, "per_second": 0.0, "inflight": 0, "active_streams": 0}
    assert retired["status"]["upstreams"] == [{"name": "default", "shed": 2}]
    assert figures.others() == [retired]


def test_a_worker_started_again_keeps_its_ledger_s_rows_spooled_and_dropped_in_the_sum(
    tmp_path: Path,
):
    # /status.json's had fallen at each restart, while /metrics kept them.
    ledger = {"spool_bytes": 900, "pending_rows": 4, "rows_spooled": 5, "rows_dropped": 2}
    figures = _figures(3, inflight=1)
    figures["status"]["ledger"] = ledger
    for _ in range(2):
        (tmp_path / "figures-0.json").write_text(json.dumps(figures))
        WorkerFigures(tmp_path, "0").retire_previous()
    (retired,) = WorkerFigures(tmp_path, "1").others()
    assert retired["status"]["ledger"] == {
        "spool_bytes": 0, "pending_rows": 0, "rows_spooled": 10, "rows_dropped": 4}


def test_a_worker_that_is_down_counts_its_requests_but_not_its_requests_in_flight(
    tmp_path: Path,
):
    path = tmp_path / "figures-1.json"
    path.write_text(json.dumps(_figures(7, inflight=3)))
    old = path.stat().st_mtime - 60  # past STALE: its process is gone
    os.utime(path, (old, old))
    (down,) = WorkerFigures(tmp_path, "0").others()
    assert down["status"]["requests"]["total"] == 7
    assert down["status"]["requests"]["inflight"] == 0
    assert [f["name"] for f in down["metrics"]] == ["hxgw_requests"]


def test_reloads_are_counted_once_for_the_daemon_not_once_per_worker():
    reloads = [{"name": "hxgw_config_reloads", "documentation": "", "type": "counter",
                "unit": "", "samples": [["hxgw_config_reloads_total", {"result": "ok"}, 3]]}]
    (family,) = added([reloads, reloads])
    assert family["samples"] == [["hxgw_config_reloads_total", {"result": "ok"}, 3]]


def test_the_limits_store_is_down_for_the_daemon_when_one_worker_finds_it_down():
    def store(up: float, failures: float) -> list[dict[str, Any]]:
        return [{"name": "hxgw_limits_store_up", "documentation": "", "type": "gauge",
                 "unit": "", "samples": [["hxgw_limits_store_up", {}, up]]},
                {"name": "hxgw_limits_store_failures", "documentation": "", "type": "counter",
                 "unit": "", "samples": [["hxgw_limits_store_failures_total", {}, failures]]}]
    up, failures = added([store(1, 0), store(0, 2), store(1, 1)])
    assert up["samples"] == [["hxgw_limits_store_up", {}, 0]]
    assert failures["samples"] == [["hxgw_limits_store_failures_total", {}, 3]]
