"""Write the upstream's response to the client: status, headers, then body or SSE."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable

from hxgw.errors import Unavailable
from hxgw.pipeline.context import Reply, RequestContext
from hxgw.pipeline.relaying import (
    USAGE_TAIL,
    is_event_stream,
    relay_body,
    relay_events,
    response_headers,
    write_error_event,
)
from hxgw.types import Next


def relay(ctx: RequestContext, call_next: Next) -> Awaitable[None]:
    """Reads ctx.reply; writes the response, ctx.status, ctx.bytes_out and ctx.outcome."""
    assert ctx.reply is not None
    reply = ctx.reply
    streaming = is_event_stream(reply)
    if not streaming and reply.response.at_eof():
        # The whole body came with the first read: answer in one write, no relay loop
        # (and no coroutine).
        _whole_body(ctx, reply)
        return call_next(ctx)
    return _relay_as_it_comes(ctx, reply, streaming, call_next)


async def _relay_as_it_comes(
    ctx: RequestContext, reply: Reply, streaming: bool, call_next: Next
) -> None:
    headers = response_headers(ctx, reply)
    if streaming:
        headers["Cache-Control"] = "no-cache"
        headers["X-Accel-Buffering"] = "no"
    ctx.status = status = reply.response.status
    if status >= 400:
        ctx.outcome = "upstream_error"
    exchange = ctx.exchange
    try:
        await exchange.start(status, headers, None if streaming else reply.response.content_length)
        if streaming:
            await _relay_stream(ctx)
        else:
            await relay_body(ctx, reply)
    except ConnectionResetError:
        ctx.outcome = "client_gone"
        return
    except asyncio.CancelledError:
        if exchange.client_gone():
            ctx.outcome = "client_gone"
        elif streaming and exchange.committed:
            # Cancelled with the client still there: the drain timeout ran out.
            ctx.outcome = "cancelled"
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await write_error_event(
                        exchange, Unavailable("the gateway stopped this stream"), False
                    )
                    await exchange.finish()
        raise
    await call_next(ctx)


async def _relay_stream(ctx: RequestContext) -> None:
    assert ctx.reply is not None
    runtime = ctx.state.runtime
    runtime.metrics.active_streams.inc()
    runtime.rate.streams += 1
    try:
        await relay_events(ctx, ctx.reply)
    finally:
        runtime.metrics.active_streams.dec()
        runtime.rate.streams -= 1


def _whole_body(ctx: RequestContext, reply: Reply) -> None:
    body = reply.first_chunk
    ctx.exchange.respond(reply.response.status, response_headers(ctx, reply), body)
    ctx.status, ctx.bytes_out = reply.response.status, len(body)
    ctx.client_first_at = time.perf_counter()
    if ctx.status >= 400:
        ctx.outcome = "upstream_error"
    at = body.rfind(b'"usage"', max(0, len(body) - USAGE_TAIL))  # one search, no tail copy
    if at >= 0:
        ctx.usage = body[at:]
