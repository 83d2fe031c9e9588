"""Turn the request's group or pinned model into an ordered list of candidates."""

from __future__ import annotations

from hxgw.context import RequestContext
from hxgw.routing import GROUP_HEADER, resolve
from hxgw.types import Next


async def route(ctx: RequestContext, call_next: Next) -> None:
    """Reads the X-HX-Model-Group header, ctx.body['model'] and ctx.key;
    writes ctx.group, ctx.pinned and ctx.candidates."""
    assert ctx.key is not None and ctx.body is not None
    model = ctx.body.get("model")
    chosen = resolve(
        ctx.state.config, ctx.request.headers.get(GROUP_HEADER), model, ctx.key, ctx.endpoint.mode
    )
    ctx.group, ctx.pinned, ctx.candidates = chosen.group, chosen.pinned, chosen.candidates
    await call_next(ctx)
