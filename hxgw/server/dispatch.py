"""aiohttp's request handler for every route: find the endpoint, run its chain.

One table lookup instead of aiohttp's URL dispatcher: the routes are fixed
paths, and every request, 404s included, goes through a chain that writes its
access line and renders its errors.
"""

from __future__ import annotations

from aiohttp import web

from hxgw.endpoints import ROUTES, UNROUTED
from hxgw.pipeline.exchange import Exchange
from hxgw.pipeline.handler import handle
from hxgw.server.inflight import Inflight
from hxgw.state import StateHolder


class Dispatcher:
    def __init__(self, holder: StateHolder, inflight: Inflight) -> None:
        self.holder, self.inflight = holder, inflight

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        endpoint = ROUTES.get((request.method, request.path), UNROUTED)
        exchange = Exchange(request, closing=self.inflight.draining)
        await handle(self.holder, self.inflight, endpoint, exchange)
        assert exchange.response is not None
        return exchange.response
