"""Starting one worker process: the environment its supervisor gives it, and its own
listening socket, passed to it alone."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from hxgw.lifecycle.start_signals import (
    GENERATION,
    STARTED_AGAIN,
    SUPERVISOR_PID,
    SUPERVISOR_STARTED,
)
from hxgw.lifecycle.worker import Worker, bind
from hxgw.observe.workers import SHARED_DIR, WORKER


async def spawn(
    worker: Worker,
    argv: list[str],
    env: Mapping[str, str],
    *,
    generation: int,
    scratch: Path,
    address: tuple[str, int],
    started: float,
) -> asyncio.subprocess.Process:
    """Start `worker` as `hxgw serve ARGV --listen-fd FD` on the config `generation` the
    others serve; `started` is when the supervisor started, the daemon's uptime."""
    env = {k: v for k, v in env.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_PID")}
    env |= {"NOTIFY_SOCKET": worker.notify_path, WORKER: str(worker.index)}
    env[SUPERVISOR_PID] = str(os.getpid())  # a worker ends when this process does
    env[SUPERVISOR_STARTED] = repr(started)
    env[GENERATION] = str(generation)
    env[SHARED_DIR] = str(scratch)  # where the workers add up their figures
    if worker.process is not None:
        env[STARTED_AGAIN] = "1"
    worker.ready.clear()
    worker.status = ""  # the last one's, of a reload this process never heard of
    worker.started_at = worker.last_ping = time.monotonic()
    if worker.listener.fileno() == -1:
        worker.listener = bind(*address, 1, listen=False)[0]
    fd = worker.listener.fileno()
    # Inheritable only for this spawn: uvloop's spawn passes every inheritable
    # descriptor, and a sibling's socket held by a worker outlives its closing here.
    worker.listener.set_inheritable(True)
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hxgw",
            "serve",
            *argv,
            "--listen-fd",
            str(fd),
            env=env,
            pass_fds=(fd,),
        )
    finally:
        worker.listener.set_inheritable(False)
