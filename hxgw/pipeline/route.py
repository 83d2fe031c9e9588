"""Turn the request's group or pinned model into an ordered list of candidates."""

from __future__ import annotations

from collections.abc import Awaitable

from hxgw.pipeline.context import Next, RequestContext
from hxgw.routing.decision import decide
from hxgw.routing.routes import GROUP_HEADER


def route(ctx: RequestContext, call_next: Next) -> Awaitable[None]:
    """Reads the X-HX-Model-Group header, ctx.body and ctx.key; writes ctx.group,
    ctx.pinned, ctx.decision and ctx.candidates (in the order they will be tried)."""
    assert ctx.key is not None and ctx.body is not None
    state = ctx.state
    model = ctx.body.get("model")
    chosen = state.routes.resolve(
        ctx.exchange.sole_header(GROUP_HEADER), model, ctx.key, ctx.endpoint.mode
    )
    ctx.group, ctx.pinned = chosen.group, chosen.pinned
    memory, classifier = state.runtime.memory, state.classifier
    # A route that only counts tokens (billed: no) tells whether a prompt fits: none is
    # refused for its size.
    sized = ctx.endpoint.billed
    ctx.decision = decide(state.config, chosen, ctx.body, memory, classifier, sized=sized)
    ctx.candidates = ctx.decision.candidates
    return call_next(ctx)
