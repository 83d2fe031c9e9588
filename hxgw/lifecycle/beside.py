"""What runs beside the server while it serves: the request rate's once-a-second tick
(and a worker's figures for the others), the event loop's lag watch, the upstreams'
readiness probe, systemd's watchdog pings and the stored keys' refresh."""

from __future__ import annotations

import asyncio
import contextlib

from hxgw.lifecycle import stores
from hxgw.lifecycle.notify import Notifier
from hxgw.runtime import Runtime
from hxgw.server.status_doc import status
from hxgw.state import SnapshotHolder


def start_beside(
    runtime: Runtime, holder: SnapshotHolder, notifier: Notifier
) -> list[asyncio.Task[None]]:
    """Start each; the daemon cancels them once it has drained."""
    beside = [
        asyncio.create_task(_tick_rate(runtime, holder)),
        asyncio.create_task(runtime.loop_lag.watch()),
        asyncio.create_task(
            runtime.readiness.probe_forever(
                lambda: holder.current,
                runtime.metrics.upstream_is_up,
                runtime.metrics.upstream_gone,
            )
        ),
    ]
    if notifier.watchdog_interval:
        beside.append(asyncio.create_task(_watchdog(notifier)))
    return beside + stores.watch_stores(runtime, lambda: holder.current.config)


async def _tick_rate(runtime: Runtime, holder: SnapshotHolder) -> None:
    """The request rate's once-a-second look at the clock (see RequestRate), and a
    worker's figures for the others (see hxgw.observe.workers)."""
    while True:
        await asyncio.sleep(1.0)
        runtime.rate.tick()
        figures = runtime.figures
        if figures is not None:
            with contextlib.suppress(OSError):  # the next second tries again
                figures.publish(runtime.metrics.registry, status(holder.current))


async def _watchdog(notifier: Notifier) -> None:
    """Runs on the event loop on purpose: a stuck loop stops the pings and systemd
    restarts the service."""
    interval = notifier.watchdog_interval or 1.0
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)
