"""One usage ledger row per authenticated API request, written when it ends,
however it ends: the ledger only queues it, a thread writes it (hxgw.usage)."""

from __future__ import annotations

import asyncio
import time

from hxgw.pipeline.billing.background import background_row
from hxgw.pipeline.billing.end_user import end_user
from hxgw.pipeline.billing.once import bill_once
from hxgw.pipeline.billing.usage import used
from hxgw.pipeline.context import Next, RequestContext
from hxgw.usage import Values
from hxgw.usage.schema import LEFT


async def record_usage(ctx: RequestContext, call_next: Next) -> None:
    """Reads the key, route, group, model, status, tokens, cost, failovers, times and
    the body's end user; writes only ctx.outcome, of a request cancelled under it
    (`ctx.cancelled`). Outside `render_errors`, so it sees the final status."""
    try:
        await call_next(ctx)
    except asyncio.CancelledError:
        ctx.cancelled()  # before the row is made: a client gone before any byte is one too
        raise
    finally:
        ledger = ctx.state.runtime.ledger
        if ledger is not None and ctx.key is not None:
            ledger.record_values(row_values(ctx))
            finished = background_row(ctx)
            if finished is not None:
                bill_once(ctx, finished)


def row_values(ctx: RequestContext) -> Values:
    """The request's ledger row, as its values in the order of hxgw.usage.COLUMNS
    (a tuple: a UsageRow costs ten times as much to build)."""
    now, wall = time.perf_counter(), time.time()
    started = wall - (now - ctx.started)
    spent = used(ctx)
    return (
        ctx.request_id,
        ctx.key.name if ctx.key else "",  # key_name
        ctx.endpoint.name,  # route
        ctx.group,  # model_group
        ctx.model_named(),
        ctx.status or 499,  # status
        spent.prompt,  # prompt_tokens
        spent.completion,  # completion_tokens
        spent.total,  # total_tokens
        spent.cost,
        ctx.stream,
        ctx.outcome in LEFT,  # disconnected
        ctx.failovers,
        started,
        None if ctx.ttfb is None else started + ctx.ttfb,  # first_byte
        wall,  # ended
        spent.source,  # usage_source
        ctx.outcome,
        spent.cached,  # cached_tokens
        spent.cache_written,  # cache_write_tokens
        spent.reasoning,  # reasoning_tokens
        None if ctx.body is None else end_user(ctx.body),  # end_user
        ctx.key.team.name if ctx.key and ctx.key.team else None,  # team
    )
