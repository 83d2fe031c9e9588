"""One usage ledger row per authenticated API request, written when it ends,
however it ends: the ledger only queues it, a thread writes it (hxgw.usage)."""

from __future__ import annotations

import asyncio
import time

from hxgw.pipeline.background import background_row
from hxgw.pipeline.context import Next, RequestContext
from hxgw.pipeline.usage import used
from hxgw.usage import Values
from hxgw.usage.schema import LEFT


async def record_usage(ctx: RequestContext, call_next: Next) -> None:
    """Reads the key, route, group, model, status, tokens, cost, failovers and times;
    writes only ctx.outcome, of a request cancelled under it (`ctx.cancelled`). Outside
    `render_errors`, so it sees the final status."""
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


def bill_once(ctx: RequestContext, row: Values) -> bool:
    """Queue a row billed by whichever answer first carries it (a batch's usage, a
    background response's) unless it was lately, and add it to its key's figures as its
    requests' are; whether it was queued."""
    runtime = ctx.state.runtime
    added = runtime.ledger.record_once(row) if runtime.ledger is not None else None
    if added is not None:
        # Counters only grow: a report below its estimate leaves the estimate in them
        # (the ledger has the report), or Prometheus would read a drop as a reset.
        key, prompt, completion, cost = added
        runtime.metrics.key_billed(key, max(prompt, 0), max(completion, 0), max(cost, 0.0))
    return added is not None


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
    )
