"""The aiohttp application: routes, the request handler, and the upstream session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

from hxgw import jsonio
from hxgw.context import RequestContext
from hxgw.endpoints import PROXIED, Endpoint, client_paths
from hxgw.errors import GatewayError, MethodNotAllowed, NotFound
from hxgw.inflight import Inflight
from hxgw.state import StateHolder, build_state
from hxgw.strategies import Memory

HOLDER = web.AppKey("holder", StateHolder)
INFLIGHT = web.AppKey("inflight", Inflight)
MEMORY = web.AppKey("memory", Memory)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(holder: StateHolder, inflight: Inflight, memory: Memory) -> web.Application:
    # Bodies are read and limited by parse_body, whose limit a reload may change.
    app = web.Application(client_max_size=2**62, handler_args={"max_field_size": 16384})
    app[HOLDER] = holder
    app[INFLIGHT] = inflight
    app[MEMORY] = memory
    app.cleanup_ctx.append(_upstream_session)
    router = app.router
    router.add_get("/healthz", healthz, allow_head=True)
    for endpoint in PROXIED:
        for path in client_paths(endpoint):
            resource = router.add_resource(path)
            resource.add_route(endpoint.method, _proxy_handler(holder, inflight, endpoint))
            resource.add_route("*", _method_not_allowed(endpoint))
    router.add_route("*", "/{tail:.*}", not_found)
    return app


def _proxy_handler(holder: StateHolder, inflight: Inflight, endpoint: Endpoint) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        state = holder.current
        ctx = RequestContext(request=request, state=state, endpoint=endpoint)
        task = asyncio.current_task()
        assert task is not None
        inflight.add(task)
        try:
            await state.chains[endpoint.name](ctx)
        finally:
            inflight.discard(task)
        if ctx.response is None:
            return error_response(GatewayError("no response was produced"))
        return ctx.response

    return handle


async def _upstream_session(app: web.Application) -> AsyncIterator[None]:
    """One keep-alive pool for every request and every reload, closed last on shutdown."""
    holder = app[HOLDER]
    connector = aiohttp.TCPConnector(
        limit=holder.config.limits.upstream_connections,
        limit_per_host=0,
        ttl_dns_cache=60,
        keepalive_timeout=30,
    )
    session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
    holder.swap(build_state(holder.config, session, generation=1, memory=app[MEMORY]))
    yield
    await session.close()


async def healthz(request: web.Request) -> web.Response:
    """Liveness only: the process answers. Readiness is another question."""
    return web.json_response({"status": "ok"})


def _method_not_allowed(endpoint: Endpoint) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return error_response(
            MethodNotAllowed(
                f"{request.method} is not allowed on {request.path}; use {endpoint.method}"
            ),
            Allow=endpoint.method,
        )

    return handle


async def not_found(request: web.Request) -> web.StreamResponse:
    return error_response(NotFound(f"no such route: {request.method} {request.path}"))


def error_response(exc: GatewayError, **headers: str) -> web.Response:
    return web.Response(
        status=exc.status,
        body=jsonio.dumps(exc.to_dict()),
        content_type="application/json",
        headers=headers,
    )
