"""One request, from its exchange to its answer: the chain of its endpoint."""

from __future__ import annotations

import asyncio

from hxgw.endpoints import Endpoint
from hxgw.errors import GatewayError
from hxgw.pipeline.context import RequestContext
from hxgw.pipeline.exchange import Exchange
from hxgw.server.inflight import Inflight
from hxgw.state import StateHolder


async def handle(
    holder: StateHolder, inflight: Inflight, endpoint: Endpoint, exchange: Exchange
) -> None:
    """Run the endpoint's chain on the snapshot current now, which the request keeps to
    its end. An API request is in `inflight` until it ends: that is what a drain waits
    for and the gauge shows (the operator's own routes are not, so a scrape does not
    count itself)."""
    task = asyncio.current_task()
    assert task is not None
    state = holder.current
    ctx = RequestContext(exchange, state, endpoint, task)
    counted = bool(endpoint.upstream_path)
    if counted:
        inflight.add(task)
    try:
        await state.chains[endpoint.name](ctx)
    finally:
        if counted:
            inflight.discard(task)
    if not exchange.answered:
        exc = GatewayError("no response was produced")
        exchange.respond(exc.status, {"Content-Type": "application/json"}, exc.to_json())
