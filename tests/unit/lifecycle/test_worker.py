"""A worker as the supervisor sees it: what its last STATUS= says of its last reload."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from hxgw.lifecycle.worker import Worker


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
