"""The fault suite's plugin: one table row per scenario, printed and written at the end.

Each scenario asks the `row` fixture for a `Row`, counts its requests into it and lets
`check_leaks` fill in the leaks. When the test ends the row travels in the test report's
`user_properties` (so it also reaches the controller under pytest-xdist), and at the
end of the session the table is printed and written as Markdown and JSON to
`$HXGW_FAULTS_REPORT` (default /tmp/hxgw-faults.md; the JSON goes beside it).
"""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.faults.harness import FAST_TIMEOUTS, MODES, Baseline, Row, baseline
from tests.fixtures import DEFAULT_MODELS, Gateway

ROW_PROPERTY = "hxgw_fault_row"
DEFAULT_REPORT = "/tmp/hxgw-faults.md"
MODULE_ORDER = ("test_upstream_faults", "test_client_faults", "test_upload_faults",
                "test_upload_failover", "test_upload_clients", "test_responses_faults",
                "test_files_faults", "test_abuse", "test_reload_and_shutdown", "test_soak",
                "test_tls")
COLUMNS = ("fault", "mode", "requests", "succeeded", "clean errors", "hangs", "unexpected",
           "leaks", "result")
_rows: list[dict[str, Any]] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: the fault-injection suite (make test-faults)")
    # 2,000 idle client connections need descriptors on both ends; the gateway inherits
    # this limit when the tests start it.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.faults)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        item.stash[_OUTCOME] = _result(report)
    return report


_OUTCOME = pytest.StashKey[str]()


def _result(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xfail" if report.skipped else "XPASS"
    return {"passed": "pass", "failed": "FAIL", "skipped": "skip"}[report.outcome]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "teardown":
        return
    module = Path(report.location[0]).stem
    for name, value in report.user_properties:
        if name == ROW_PROPERTY:
            _rows.append({**value, "_order": (_module_rank(module), report.location[1] or 0,
                                              _mode_rank(value.get("mode")), report.nodeid)})


def _module_rank(module: str) -> int:
    return MODULE_ORDER.index(module) if module in MODULE_ORDER else len(MODULE_ORDER)


def _mode_rank(mode: str | None) -> int:
    return MODES.index(mode) if mode in MODES else -1


@pytest.fixture
def row(request: pytest.FixtureRequest) -> Iterator[Callable[..., Row]]:
    """Make the table rows of this test; they are reported whatever way the test ends."""
    rows: list[Row] = []

    def make(fault: str, mode: str = "-", expect: str = "ok") -> Row:
        rows.append(Row(fault=fault, mode=mode, expect=expect))
        return rows[-1]

    yield make
    for made in rows:
        made.result = request.node.stash.get(_OUTCOME, "?")
        request.node.user_properties.append((ROW_PROPERTY, made.as_dict()))


Launch = Callable[..., Any]


@pytest.fixture
def launch(
    start_gateway: StartGateway, fake: FakeUpstream, upstream: tuple[FakeUpstream, str]
) -> Launch:
    """Start a gateway with short timeouts and a known pool; warm it up; take its baseline.
    The fake upstream forgets the warm-up requests. A request waits for a turn at the
    pool for up to 30 s: these tests load a small pool on a shared, noisy machine, and
    shedding is tested on its own (tests/e2e/test_capacity.py)."""

    async def start(*, pool: int = 64, timeouts: dict[str, float] | None = None,
                    models: list[dict[str, Any]] | None = None,
                    routing: dict[str, Any] | None = None, upstream_url: str | None = None,
                    upstream_key: str | None = None, env: dict[str, str] | None = None,
                    **gateway: Any) -> tuple[Gateway, Baseline]:
        limits = {"upstream_connections": pool, **gateway.pop("limits", {})}
        gateway.setdefault("upstreams", {"default": {"url": upstream_url or upstream[1],
                                                     "queue_timeout": 30}})
        started = await start_gateway(
            gateway={"timeouts": {**FAST_TIMEOUTS, **(timeouts or {})}, "limits": limits,
                     **gateway},
            models=models or gateway_models(), routing=routing or gateway_routing(),
            upstream_url=upstream_url, upstream_key=upstream_key, env=env)
        base = await baseline(started, pool)
        for seen in (fake.requests, fake.cancelled, fake.finished, fake.admin_hits,
                     fake.uploads_started, fake.uploads_cancelled):
            seen.clear()
        return started, base

    return start


def gateway_models() -> list[dict[str, Any]]:
    return [dict(m) for m in DEFAULT_MODELS]


def gateway_routing() -> dict[str, Any]:
    """The default groups; the circuit breaker is kept out of the way (a scenario that
    repeats one fault would otherwise open it and see the next model serve)."""
    return {"routing": {"strategy": "failover", "default_group": "chat",
                        "circuit_breaker": {"failures": 1000},
                        "groups": {"chat": ["alpha", "beta"], "solo": ["gamma"],
                                   "emb": ["embed"]}}}


# -- the report ------------------------------------------------------------------------------

def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not _rows:
        return
    rows = sorted(_rows, key=lambda r: r["_order"])
    lines = _table(rows)
    terminalreporter.section("hxgw fault table")
    for line in lines:
        terminalreporter.write_line(line)
    path = Path(os.environ.get("HXGW_FAULTS_REPORT") or DEFAULT_REPORT)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n" + LEGEND)
        clean = [{k: v for k, v in r.items() if k != "_order"} for r in rows]
        path.with_suffix(".json").write_text(json.dumps(clean, indent=1) + "\n")
    except OSError as exc:
        terminalreporter.write_line(f"could not write the fault report to {path}: {exc}")
        return
    terminalreporter.write_line(f"fault table written to {path} and {path.with_suffix('.json')}")


def _cells(row: dict[str, Any]) -> list[str]:
    return [row["fault"], row["mode"], str(row["requests"]), str(row["succeeded"]),
            str(row["clean_errors"]), str(row["hangs"]), str(row["unexpected"]),
            str(row["leaks"]), row["result"]]


def _table(rows: list[dict[str, Any]]) -> list[str]:
    body = [_cells(r) for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(COLUMNS)]

    def line(cells: list[str] | tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(COLUMNS), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(b) for b in body]
    passing = [r for r in rows if r["result"] == "pass"]
    known = [r for r in rows if r["result"] == "xfail"]
    others = [r for r in rows if r["result"] not in ("pass", "xfail")]
    totals = {k: sum(r[k] for r in passing) for k in ("requests", "hangs", "leaks", "unexpected")}
    out.append("")
    out.append(f"{len(passing)} passing rows, {totals['requests']} requests: hangs "
               f"{totals['hangs']}, leaks {totals['leaks']}, unexpected {totals['unexpected']}")
    if known:
        out.append(f"{len(known)} rows show known defects (xfail): "
                   + "; ".join(f"{r['fault']} [{r['mode']}]" for r in known))
    if others:
        out.append(f"{len(others)} rows FAILED or were not run to the end: "
                   + "; ".join(f"{r['fault']} [{r['mode']}] {r['result']}" for r in others))
    return out


LEGEND = """
How to read it: each row is one scenario against a fresh `hxgw serve` process. *succeeded*:
the request got its complete answer (or, for a client that leaves, the gateway did what it
must: the upstream request was cancelled). *clean errors*: an OpenAI-shaped 4xx/5xx, a
stream ended by `event: error`, a plain body cut before its announced end, a connection
refused or closed on purpose. *hangs*: no end within the bound (20 s, or the scenario's
own). *unexpected*: anything else. *leaks*: after the scenario settled, client sockets still
open, upstream sockets beyond the pool or the scenario's concurrency, other descriptors or
RSS above the baseline (+3 fds, +40 MB), or an RSS peak over the scenario's bound. Rows
marked *xfail* show a known defect (see the test's reason).
"""
