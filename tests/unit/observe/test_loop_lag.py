"""The event loop's lag: how late a periodic timer fires, the worst of the last ticks."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hxgw.config import Config, load_config
from hxgw.observe.loop_lag import INTERVAL, LoopLag
from hxgw.observe.readiness import Readiness
from tests.fixtures import write_config


async def test_a_loop_blocked_for_a_while_shows_that_lag():
    lag = LoopLag()
    watching = asyncio.create_task(lag.watch())
    await asyncio.sleep(0.01)
    time.sleep(0.6)
    await asyncio.sleep(INTERVAL * 1.5)
    watching.cancel()
    assert lag.seconds >= 0.3


def _config(tmp_path: Path, **readiness: float) -> Config:
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"readiness": readiness})
    return load_config(tmp_path, {"MASTER_KEY": "k"})


def test_readiness_says_overloaded_past_the_configured_lag(tmp_path: Path):
    readiness = Readiness()
    readiness.saw_ok("default")
    ready, body = readiness.report(_config(tmp_path, max_loop_lag=0.5), False, loop_lag=0.8)
    assert not ready
    assert body["reasons"] == ["overloaded: the event loop runs 0.80s late"]


def test_readiness_ignores_lag_under_the_limit_or_with_the_check_off(tmp_path: Path):
    readiness = Readiness()
    readiness.saw_ok("default")
    assert readiness.report(_config(tmp_path / "a", max_loop_lag=0.5), False, 0.3)[0]
    assert readiness.report(_config(tmp_path / "b", max_loop_lag=0), False, 9.0)[0]
