"""Answer one of the operator's routes: health, readiness, metrics, status, API document."""

from __future__ import annotations

from hxgw.pipeline.context import Next, RequestContext

OUTCOME = "hxgw_outcome"
"""Where a handler's refusal puts its outcome, in the response's own mapping."""


async def answer_operator(ctx: RequestContext, call_next: Next) -> None:
    """Reads ctx.operator, the server's handler for the route; writes the response,
    ctx.status and ctx.bytes_out."""
    assert ctx.operator is not None
    response = await ctx.operator(ctx.exchange.request, ctx.state)
    ctx.exchange.take(response)
    ctx.status = response.status
    ctx.outcome = response.get(OUTCOME, ctx.outcome)
    ctx.bytes_out = response.content_length or 0
    await call_next(ctx)
