"""A worker as the supervisor sees it: what its last STATUS= says of its last reload, and
what the workers asked to reload answered."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from hxgw.lifecycle.worker import Worker, all_set, answers, judge_reload, ready_or_gone


@pytest.fixture
def worker() -> Iterator[Worker]:
    worker = Worker(index=0, notify_path="", notify=socket.socket(), listener=socket.socket())
    yield worker
    worker.notify.close()
    worker.listener.close()


@pytest.mark.parametrize("last", ["rejected: routing.yaml: bad", "failed: RuntimeError: broke"])
def test_a_reload_the_worker_rejected_or_failed_is_refused_with_why(worker: Worker, last: str):
    worker.status = f"serving on 127.0.0.1:4010; config generation 3; last reload: {last}"
    assert worker.reload_refused == last


def test_a_reload_the_worker_took_is_not_refused(worker: Worker):
    worker.status = "serving on 127.0.0.1:4010; config generation 4; last reload: ok: generation 4"
    assert worker.reload_refused is None


async def _running(worker: Worker, status: str) -> Worker:
    """`worker` as serving a real process that answered a reload with `status`."""
    worker.process = await asyncio.create_subprocess_exec("sleep", "30")
    worker.ready.set()
    worker.reloaded.set()
    worker.status = f"serving on 127.0.0.1:4010; config generation 2; last reload: {status}"
    return worker


@pytest.fixture
async def three() -> AsyncIterator[list[Worker]]:
    workers = [
        Worker(index=i, notify_path="", notify=socket.socket(), listener=socket.socket())
        for i in range(3)
    ]
    yield workers
    for worker in workers:
        worker.notify.close()
        worker.listener.close()
        if worker.process is not None and worker.process.returncode is None:
            worker.process.kill()
            await worker.process.wait()


async def test_a_reload_some_workers_took_and_others_refused_says_both(three: list[Worker]):
    took, refused = answers([
        await _running(three[0], "ok: generation 2"),
        await _running(three[1], "rejected: routing.yaml: bad"),
        await _running(three[2], "ok: generation 2"),
    ])
    assert (took, refused) == ([three[0], three[2]], ["rejected: routing.yaml: bad"])


async def test_a_reload_some_workers_took_is_said_to_diverge_and_counts_as_taken(
    three: list[Worker],
):
    # Those that took it serve the next generation: a worker started again starts at it.
    asked = [await _running(three[0], "ok: generation 2"),
             await _running(three[1], "rejected: routing.yaml: bad")]
    assert judge_reload(asked, True) == (
        "last reload: diverged, 1 of 2 took it: rejected: routing.yaml: bad", True)


async def test_a_reload_not_every_worker_confirmed_counts_as_taken_by_those_that_did(
    three: list[Worker],
):
    slow = await _running(three[1], "ok: generation 1")
    slow.reloaded.clear()  # no answer yet when the wait ended
    asked = [await _running(three[0], "ok: generation 2"), slow]
    assert judge_reload(asked, False) == ("last reload: incomplete", True)


async def test_a_worker_that_died_during_the_reload_says_nothing_of_it(three: list[Worker]):
    # Its last words were of an earlier reload it refused: it starts again on the files.
    dead = await _running(three[0], "rejected: an old problem")
    assert dead.process is not None
    dead.process.kill()
    await dead.process.wait()
    alive = await _running(three[1], "ok: generation 2")
    assert answers([dead, alive]) == ([alive], [])


async def test_a_worker_that_has_not_answered_yet_says_nothing_of_it(three: list[Worker]):
    slow = await _running(three[0], "rejected: an old problem")
    slow.reloaded.clear()
    assert answers([slow]) == ([], [])


async def test_the_first_start_waits_no_longer_for_a_worker_that_exited(three: list[Worker]):
    # Its config broken between the supervisor's read and its own, a worker exits at
    # once: the supervisor had waited READY_TIMEOUT (30 s, systemd's start timeout) out.
    serving = await _running(three[0], "ok: generation 1")
    three[1].process = await asyncio.create_subprocess_exec("false")
    waited = asyncio.ensure_future(
        all_set([serving, three[1]], ready_or_gone, 3600, asyncio.Event()))
    assert await asyncio.wait_for(waited, 30)  # over: one ready, the other gone
    assert not three[1].ready.is_set()
