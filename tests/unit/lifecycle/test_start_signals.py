"""What a process learns at its start from the one that started it."""

from __future__ import annotations

from hxgw.lifecycle.start_signals import SUPERVISOR_STARTED, daemon_started


def test_a_worker_s_daemon_started_when_its_supervisor_did():
    # The uptime /status shows is the service's, not the worker's (one may be restarted).
    assert daemon_started({SUPERVISOR_STARTED: "1750000000.5"}) == 1750000000.5
