"""aiohttp's request handler for every route: find the endpoint, run its chain.

One table lookup instead of aiohttp's URL dispatcher: the routes are fixed
paths, and every request, 404s included, goes through a chain that writes its
access line and renders its errors.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from hxgw.endpoints import endpoint_for
from hxgw.errors import GatewayError
from hxgw.pipeline.chain import build_chains
from hxgw.pipeline.context import RequestContext
from hxgw.pipeline.cors import allowed_origin
from hxgw.pipeline.exchange import Exchange
from hxgw.runtime import Inflight
from hxgw.server.operator_routes import HANDLERS
from hxgw.state import SnapshotHolder


class Dispatcher:
    """The handler aiohttp's server calls for each request (see the module's docstring)."""

    def __init__(self, holder: SnapshotHolder, inflight: Inflight) -> None:
        self.holder, self.inflight = holder, inflight
        self.chains = build_chains(HANDLERS)
        # Named, the loop spares `current_task` the look-up that on Python 3.11 costs a
        # getpid() system call per request.
        self.loop = asyncio.get_running_loop()

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        """Run the endpoint's chain on the snapshot current now, which the request keeps
        to its end. An API request is in `inflight` until it ends: that is what a drain
        waits for and the gauge shows (the operator's own routes are not, so a scrape
        does not count itself)."""
        endpoint = endpoint_for(request.method, request.path)
        snapshot = self.holder.current
        origin = request.headers.get("Origin")  # a page in a browser
        cors = allowed_origin(snapshot.config.cors_origins, origin, request.path)
        exchange = Exchange(request, cors=cors, inflight=self.inflight)
        task = asyncio.current_task(self.loop)
        assert task is not None
        ctx = RequestContext(exchange, snapshot, endpoint, task)
        counted = bool(endpoint.upstream_path)
        if counted:
            self.inflight.add(task)
        try:
            await self.chains[endpoint](ctx)
        finally:
            if counted:
                self.inflight.discard(task)
        if exchange.response is None:
            exc = GatewayError("no response was produced")
            exchange.respond(exc.status, {"Content-Type": "application/json"}, exc.to_json())
        assert exchange.response is not None
        if "Content-Encoding" in request.headers and not request.content.is_eof():
            limits = snapshot.config.limits  # a compressed body no step read (a 401)
            await exchange.discard_unread(limits.client_idle_timeout, limits.body_timeout)
        return exchange.response
