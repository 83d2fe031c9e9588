"""One usage ledger row per authenticated API request, written when it ends,
however it ends: the ledger only queues it, a thread writes it (hxgw.usage)."""

from __future__ import annotations

import time

from hxgw.pipeline.context import RequestContext
from hxgw.pipeline.usage import used
from hxgw.types import Next
from hxgw.usage import UsageRow


async def record_usage(ctx: RequestContext, call_next: Next) -> None:
    """Reads the key, route, group, model, status, tokens, cost, failovers and times;
    writes nothing on ctx. Outside `render_errors`, so it sees the final status."""
    try:
        await call_next(ctx)
    finally:
        ledger = ctx.state.runtime.ledger
        if ledger is not None and ctx.key is not None:
            ledger.record(_row(ctx))


def _row(ctx: RequestContext) -> UsageRow:
    now, wall = time.perf_counter(), time.time()
    started = wall - (now - ctx.started)
    spent = used(ctx)
    return UsageRow(
        request_id=ctx.request_id,
        key_name=ctx.key.name if ctx.key else "",
        route=ctx.endpoint.name,
        model_group=ctx.group,
        model=ctx.served_by,
        status=ctx.status or 499,
        prompt_tokens=spent.prompt,
        completion_tokens=spent.completion,
        total_tokens=spent.total,
        cost=spent.cost,
        stream=ctx.stream,
        disconnected=ctx.outcome == "client_gone",
        failovers=ctx.failovers,
        started=started,
        first_byte=None if ctx.ttfb is None else started + ctx.ttfb,
        ended=wall,
        usage_source=spent.source,
    )
