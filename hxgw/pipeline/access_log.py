"""One access line per request, written when it ends, however it ends."""

from __future__ import annotations

import asyncio
import time

from hxgw.pipeline.context import Next, RequestContext


async def log_access(ctx: RequestContext, call_next: Next) -> None:
    """Reads everything the later steps recorded on ctx; writes the log, and on ctx only
    the outcome of a request cancelled under it (`ctx.cancelled`: the operator's chains
    have no record_usage to say it)."""
    try:
        await call_next(ctx)
    except asyncio.CancelledError:
        ctx.cancelled()
        raise
    finally:
        if ctx.state.config.logging.access_log:
            _write(ctx)


def _write(ctx: RequestContext) -> None:
    exchange = ctx.exchange
    latency = time.perf_counter() - ctx.started
    spent = ctx.used  # worked out by record_metrics (inside this step), for every API request
    tokens = None if spent is None or spent.source == "none" else (spent.prompt, spent.completion)
    ctx.state.runtime.access.write(
        exchange.method,
        exchange.path,
        ctx.request_id,
        status=ctx.status or 499,
        model=ctx.model_named(),
        group=ctx.group,
        key=ctx.key.name if ctx.key else None,
        latency=latency,
        ttfb=ctx.ttfb,
        queued=ctx.queued,
        size=ctx.bytes_out,
        failovers=ctx.failovers,
        outcome=ctx.outcome,
        tokens=tokens,
        upstream_id=ctx.reply.response.upstream_id if ctx.reply is not None else None,
    )
