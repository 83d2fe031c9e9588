"""Answer a browser's CORS preflight (an OPTIONS request) for an API path, which no
route takes: with the methods and headers the page may send, or on to the refusal."""

from __future__ import annotations

from hxgw.endpoints import allowed_methods, endpoint_for
from hxgw.pipeline.context import Next, RequestContext
from hxgw.pipeline.cors import preflight_headers


async def answer_preflight(ctx: RequestContext, call_next: Next) -> None:
    """Reads the request's method, path and Access-Control-Request-* headers; for a
    preflight of a method an API path serves, writes the 204, ctx.status and ctx.outcome
    (`preflight`); anything else goes on to refuse_unrouted."""
    exchange = ctx.exchange
    allowed = allowed_methods(exchange.path)
    asked = exchange.header("Access-Control-Request-Method")
    if (
        exchange.method != "OPTIONS"
        or exchange.cors is None
        or allowed is None
        or asked not in allowed.split(", ")
        or not endpoint_for(asked, exchange.path).upstream_path  # an operator route's
    ):
        return await call_next(ctx)
    asked_headers = exchange.header("Access-Control-Request-Headers")
    headers = preflight_headers(exchange.cors, allowed, asked_headers)
    exchange.cors = None  # the preflight's own headers say it all
    exchange.respond(204, headers, b"")
    ctx.status, ctx.outcome = 204, "preflight"
