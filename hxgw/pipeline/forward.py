"""Send the request upstream, failing over until a candidate produces a first byte."""

from __future__ import annotations

import time

from hxgw.pipeline.context import RequestContext
from hxgw.pipeline.failover import open_reply
from hxgw.types import Next


async def forward(ctx: RequestContext, call_next: Next) -> None:
    """Reads ctx.candidates and ctx.upstream_bodies; writes ctx.reply, ctx.served_by,
    ctx.failovers, ctx.ttfb.

    The upstream response is closed on every way out but a complete read, so a
    client that leaves (its handler is cancelled) aborts the upstream request
    at once instead of letting the model generate for nobody.
    """
    ctx.reply = reply = await open_reply(ctx)
    ctx.served_by = reply.model.name
    response = reply.response
    try:
        await call_next(ctx)
    finally:
        if response.at_eof():
            response.release()
        else:
            response.close()
        if ctx.stream_failed:
            reply.health.failed(time.monotonic(), token=reply.token)
        elif ctx.outcome in ("client_gone", "cancelled"):
            reply.health.finished_other(reply.token)
        else:
            reply.health.succeeded(time.perf_counter() - ctx.started, reply.token)
