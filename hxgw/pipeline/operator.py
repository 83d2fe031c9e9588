"""Answer one of the operator's routes: health, readiness, metrics, status, API document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from hxgw.pipeline.context import RequestContext
from hxgw.server import operator_routes as operations
from hxgw.types import Next

OperatorHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

HANDLERS: Mapping[str, OperatorHandler] = {
    "healthz": operations.healthz,
    "readyz": operations.readyz,
    "metrics": operations.metrics,
    "status": operations.status_page,
    "status.json": operations.status_json,
    "openapi.json": operations.openapi,
}


async def answer_operator(ctx: RequestContext, call_next: Next) -> None:
    """Reads ctx.endpoint; writes the response, ctx.status and ctx.bytes_out."""
    request = ctx.exchange.request
    request[operations.STATE] = ctx.state
    response = await HANDLERS[ctx.endpoint.name](request)
    ctx.exchange.take(response)
    ctx.status = response.status
    ctx.bytes_out = response.content_length or 0
    await call_next(ctx)
