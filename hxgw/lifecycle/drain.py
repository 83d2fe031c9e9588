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
    now: asyncio.Event,
) -> None:
    """`now` set (a second stop signal) ends the wait for in-flight requests at once:
    they are cancelled as at the drain timeout, so each still gets its error event, its
    access line and its usage row."""
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
    while server.connections and loop.time() < grace and not now.is_set():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    server.pre_shutdown()  # idle connections close now, busy ones after their answer
    if not await _idle_unless(now, inflight, max(0.0, deadline - loop.time())):
        cancelled = inflight.cancel_all()
        why = "second stop signal" if now.is_set() else "drain timeout reached"
        log.warning(f"{why}; cancelling requests", cancelled=cancelled)
        if not await inflight.wait_idle(2.0):
            log.warning("requests still running after their cancel", left=len(inflight))
    await runner.cleanup()


async def _idle_unless(now: asyncio.Event, inflight: Inflight, seconds: float) -> bool:
    """Whether every request finished within `seconds`, unless `now` is set first."""
    told = asyncio.ensure_future(now.wait())
    idle = asyncio.ensure_future(inflight.wait_idle(seconds))
    try:
        await asyncio.wait((told, idle), return_when=asyncio.FIRST_COMPLETED)
    finally:
        told.cancel()
        idle.cancel()
        # Let them end now: a wait left to end later would clear the wait the caller
        # starts next, which would then never hear the last request go.
        await asyncio.gather(told, idle, return_exceptions=True)
    return not idle.cancelled() and idle.result()
