"""Signals around a process's start: a reload asked for before the daemon can carry it
out, and a worker that must not outlive its supervisor.

SIGHUP's default action ends the process. Until the daemon (or the supervisor) has
its own handler, that is while the config loads and, with `--workers N`, until every
worker serves, a `kill -HUP` or `systemctl reload` would kill it. From its first
moments `hxgw serve` catches SIGHUP here instead (`EarlyReload`), and a worker its
supervisor's RELOAD_NOW; the daemon carries the reload out as soon as it serves, with the
config as it is then.

A worker asks the kernel for SIGTERM when its supervisor dies (`follow_supervisor`),
however it dies (SIGKILL, the OOM killer): without that, orphaned workers would go on
serving on the supervisor's sockets with its old config, and beside the workers of a
gateway started again. systemd would kill them with the service's cgroup; a terminal,
a container or a test harness would not.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Mapping
from types import FrameType

SUPERVISOR_PID = "HX_SUPERVISOR_PID"
"""The environment variable by which a supervisor tells its workers its pid."""
GENERATION = "HX_CONFIG_GENERATION"
"""... and the config generation its workers serve, which one started again starts at."""
SUPERVISOR_STARTED = "HX_SUPERVISOR_STARTED"
"""... and when it started (seconds since the epoch): the daemon's uptime is its."""
STARTED_AGAIN = "HX_STARTED_AGAIN"
"""... and, to a worker started again, that it says its start itself: worker 0 said the
first for all of them, of files that may have changed since."""
STOP_NOW = signal.SIGUSR1
"""How a supervisor tells a draining worker to cut its drain short (a second stop), and
then to exit at once (a third): a worker's own SIGTERM only ever starts its drain."""
RELOAD_NOW = signal.SIGUSR2
"""How a supervisor asks a worker to reload. A worker ignores SIGHUP: a `kill -HUP` to
the whole process group reaches it and its supervisor, which passes the reload on, and
the worker would reload twice, ahead of the others."""
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class EarlyReload:
    def __init__(self, *, worker: bool = False) -> None:
        self.requested = False
        if worker:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(RELOAD_NOW if worker else signal.SIGHUP, self._note)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def follow_supervisor(supervisor: int) -> bool:
    """Have SIGTERM sent to this worker when its supervisor dies (a worker then drains
    and stops as on any SIGTERM). False when the supervisor is gone already."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (AttributeError, OSError):  # not Linux: nothing asks the kernel
        return True
    prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    # Asked for after the fork: a supervisor that died before is not signalled for.
    return os.getppid() == supervisor


def daemon_started(env: Mapping[str, str]) -> float:
    """When the daemon started: its supervisor's start for a worker, else now."""
    started = env.get(SUPERVISOR_STARTED)
    return float(started) if started else time.time()
