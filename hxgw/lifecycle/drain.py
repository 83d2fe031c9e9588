"""Stopping without dropping a request: the drain after SIGTERM.

Stop accepting; answer what comes on the connections already open for a short
grace; let in-flight requests finish within the drain timeout; then cancel
the rest while their connections are still open, so that a cut stream still
gets its error event. Every answer given while draining closes its connection.
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from hxgw.lifecycle.notify import Notifier
from hxgw.runtime import Inflight
from hxgw.server import GatewayServer

log = structlog.get_logger("hxgw.lifecycle.drain")

FIRST_REQUEST_GRACE = 1.0
"""How long a connection accepted before the listener closed has to send its request."""


async def drain(
    runner: web.BaseRunner,
    server: GatewayServer,
    inflight: Inflight,
    notifier: Notifier,
    *,
    seconds: float,
) -> None:
    inflight.draining = True
    notifier.stopping(f"draining {len(inflight)} in-flight requests (up to {seconds:g}s)")
    log.info("stopping", inflight=len(inflight), drain_timeout=seconds)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    for site in list(runner.sites):
        await site.stop()
    # The kernel completes a handshake before the gateway accepts it: a client that
    # connected just before the listener closed has done nothing wrong, and closing on
    # it would lose a request never answered.
    grace = loop.time() + min(FIRST_REQUEST_GRACE, seconds)
    # Polled: aiohttp signals no "last connection closed", and this runs once, at stop.
    while server.connections and loop.time() < grace:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    server.pre_shutdown()  # idle connections close now, busy ones after their answer
    if not await inflight.wait_idle(max(0.0, deadline - loop.time())):
        cancelled = inflight.cancel_all()
        log.warning("drain timeout reached; cancelling requests", cancelled=cancelled)
        await inflight.wait_idle(2.0)
    await runner.cleanup()
