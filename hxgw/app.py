"""The aiohttp application: routes, the request handler, and what runs beside requests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from hxgw import jsonio, operations
from hxgw.endpoints import PROXIED, Endpoint, client_paths
from hxgw.errors import GatewayError, MethodNotAllowed, NotFound
from hxgw.exchange import AiohttpExchange
from hxgw.handler import handle
from hxgw.runtime import Runtime
from hxgw.state import HOLDER, StateHolder, build_state
from hxgw.upstream_http import UpstreamClient

RUNTIME = web.AppKey("runtime", Runtime)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(holder: StateHolder, runtime: Runtime) -> web.Application:
    # Bodies are read and limited by parse_body, whose limit a reload may change.
    app = web.Application(client_max_size=2**62, handler_args={"max_field_size": 16384})
    app[HOLDER] = holder
    app[RUNTIME] = runtime
    app.cleanup_ctx.append(_upstream_client)
    app.cleanup_ctx.append(_readiness_probe)
    app.on_response_prepare.append(_server_header)
    router = app.router
    router.add_get("/healthz", healthz, allow_head=True)
    router.add_get("/readyz", operations.readyz, allow_head=True)
    router.add_get("/metrics", operations.metrics)
    router.add_get("/status", operations.status_page)
    router.add_get("/status.json", operations.status_json)
    router.add_get("/openapi.json", operations.openapi)
    for endpoint in PROXIED:
        for path in client_paths(endpoint):
            resource = router.add_resource(path)
            resource.add_route(endpoint.method, _proxy_handler(holder, runtime, endpoint))
            resource.add_route("*", _method_not_allowed(endpoint))
    router.add_route("*", "/{tail:.*}", not_found)
    return app


def _proxy_handler(holder: StateHolder, runtime: Runtime, endpoint: Endpoint) -> Handler:
    inflight = runtime.inflight

    async def handle_request(request: web.Request) -> web.StreamResponse:
        exchange = AiohttpExchange(request)
        await handle(holder, inflight, endpoint, exchange)
        assert exchange.response is not None
        return exchange.response

    return handle_request


async def _upstream_client(app: web.Application) -> AsyncIterator[None]:
    """One set of upstream connection pools for every request and every reload, closed
    last on shutdown."""
    holder = app[HOLDER]
    client = UpstreamClient(max_in_use=holder.config.limits.upstream_connections)
    holder.swap(build_state(holder.config, client, generation=1, runtime=app[RUNTIME]))
    yield
    client.close()


async def _readiness_probe(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[RUNTIME].readiness.probe_forever(app[HOLDER]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    """Name the gateway, not the Python and aiohttp versions behind it."""
    response.headers["Server"] = "hxgw"


async def healthz(request: web.Request) -> web.Response:
    """Liveness only: the process answers. Readiness is /readyz."""
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
