"""Send the request upstream, failing over until a candidate produces a first byte."""

from __future__ import annotations

from hxgw.context import RequestContext
from hxgw.types import Next
from hxgw.upstream import open_reply


async def forward(ctx: RequestContext, call_next: Next) -> None:
    """Reads ctx.candidates and ctx.upstream_bodies; writes ctx.reply, ctx.attempts, ctx.ttfb.

    The upstream response is closed on every way out but a complete read, so a
    client that leaves (its handler is cancelled) aborts the upstream request
    at once instead of letting the model generate for nobody.
    """
    ctx.reply = await open_reply(ctx)
    response = ctx.reply.response
    try:
        await call_next(ctx)
    finally:
        if response.content.at_eof():
            response.release()
        else:
            response.close()
