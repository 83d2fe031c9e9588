"""Separate OS processes sharing one store enforce one limit: two gateway instances on
one Redis, or two workers on one scratch dir."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from hxgw.keys import limiter_shared
from hxgw.keys.limiter_redis import RedisLimiter
from hxgw.keys.limiter_shared import SharedLimiter
from hxgw.keys.limits import KeyLimits
from tests.fixtures import REPO, wait_for
from tests.redis_server import RedisServer


def run_together(backend: str, where: str, processes: int, count: int,
                 limits: dict[str, float], cost: float = 0.0) -> list[int]:
    """Start the processes, release them at once when all are ready; what each let through."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.unit.keys.limits_client", backend, where,
             str(count), json.dumps(limits), str(cost)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0
            results.append(json.loads(out)["allowed"])
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


@pytest.fixture(params=["shared", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return "redis", server.url
    return "shared", str(tmp_path)


def test_two_processes_sharing_a_store_enforce_one_rpm(store: tuple[str, str]) -> None:
    allowed = run_together(*store, processes=2, count=10, limits={"rpm": 15})
    assert sum(allowed) == 15


async def test_parallel_requests_from_two_processes_overspend_by_at_most_one(
    store: tuple[str, str],
) -> None:
    allowed = run_together(*store, processes=2, count=25, limits={"budget": 1.0}, cost=0.1)
    assert sum(allowed) == 10  # each reserved 0.1 before the next was judged
    backend, where = store
    limiter = SharedLimiter(Path(where)) if backend == "shared" else RedisLimiter(where)
    spent = (await limiter.reserve("k", KeyLimits(), 0, 0.0, time.time())).usage.spent
    await limiter.close()
    assert spent <= 1.0 + 0.1


async def test_shared_file_outlives_a_worker(tmp_path: Path) -> None:
    """A worker started after another stopped sees the first one's requests."""
    first = SharedLimiter(tmp_path)
    assert (await first.reserve("k", KeyLimits(rpm=1), 1, 0.0, time.time())).allowed
    await first.close()
    second = SharedLimiter(tmp_path)
    assert not (await second.reserve("k", KeyLimits(rpm=1), 1, 0.0, time.time())).allowed
    await second.close()


async def test_a_release_the_locked_file_refuses_is_logged_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limiter_shared, "BUSY_TIMEOUT_MS", 50)
    limiter = SharedLimiter(tmp_path)
    made = (await limiter.reserve("k", KeyLimits(max_parallel=1), 1, 0.0, time.time())).reservation
    assert made is not None
    holder = sqlite3.connect(tmp_path / limiter_shared.FILE_NAME, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another worker stuck in a transaction
    with capture_logs() as logs:
        limiter.release(made)
        await asyncio.sleep(0.5)
    holder.execute("ROLLBACK")
    holder.close()
    await limiter.close()
    assert [e["event"] for e in logs] == [
        "a limits correction failed; its reservation holds until its lease ends"]
    assert "database is locked" in logs[0]["error"]


async def test_a_let_go_the_file_refuses_is_logged_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The caller left while its decision was made: the reservation made for it is let go
    # in the thread, where nobody awaits the correction.
    limiter = SharedLimiter(tmp_path)

    def locked(*_: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(limiter, "reconcile_now", locked)
    with capture_logs() as logs:
        asking = asyncio.ensure_future(
            limiter.reserve("k", KeyLimits(max_parallel=1), 1, 0.0, time.time())
        )
        await asyncio.sleep(0)  # on its way to the thread
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking
        await wait_for(lambda: logs)
    await limiter.close()
    assert [e["event"] for e in logs] == [
        "a limits correction failed; its reservation holds until its lease ends"]
    assert "database is locked" in logs[0]["error"]
