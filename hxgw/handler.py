"""One proxied request, from its exchange to its answer, on either HTTP server."""

from __future__ import annotations

import asyncio

from hxgw.context import RequestContext
from hxgw.endpoints import Endpoint
from hxgw.errors import GatewayError
from hxgw.exchange import Exchange
from hxgw.inflight import Inflight
from hxgw.state import StateHolder


async def handle(
    holder: StateHolder,
    inflight: Inflight,
    endpoint: Endpoint,
    exchange: Exchange,
    task: asyncio.Task[None] | None = None,
) -> None:
    """Run the endpoint's chain on the snapshot current now; shutdown sees the request
    in `inflight` until it ends. `task` is the one running this, if the caller knows
    it: asyncio.current_task() costs a getpid syscall on Python 3.11."""
    task = task or asyncio.current_task()
    assert task is not None
    state = holder.current
    ctx = RequestContext(exchange, state, endpoint, task)
    inflight.add(task)
    try:
        await state.chains[endpoint.name](ctx)
    finally:
        inflight.discard(task)
    if not exchange.answered:
        exc = GatewayError("no response was produced")
        exchange.respond(exc.status, {"Content-Type": "application/json"}, exc.to_json())
