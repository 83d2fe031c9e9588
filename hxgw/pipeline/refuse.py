"""Refuse a request no route takes: 405 when its path is served with another method."""

from __future__ import annotations

from hxgw.endpoints import allowed_methods
from hxgw.errors import MethodNotAllowed, NotFound
from hxgw.pipeline.context import RequestContext
from hxgw.types import Next


async def refuse_unrouted(ctx: RequestContext, call_next: Next) -> None:
    """Reads the request's method and path; raises NotFound or MethodNotAllowed."""
    exchange = ctx.exchange
    allowed = allowed_methods(exchange.path)
    if allowed is None:
        raise NotFound(f"no such route: {exchange.method} {exchange.path}")
    raise MethodNotAllowed(
        f"{exchange.method} is not allowed on {exchange.path}; use {allowed}", allow=allowed
    )
