"""Prometheus counters and histograms for every request, however it ends."""

from __future__ import annotations

import time

from hxgw.pipeline.context import Next, RequestContext
from hxgw.pipeline.usage import used


async def record_metrics(ctx: RequestContext, call_next: Next) -> None:
    """Reads ctx.status, served model, group, key, ttfb, the overhead marks and what the
    request used; writes only metrics."""
    try:
        await call_next(ctx)
    finally:
        runtime = ctx.state.runtime
        runtime.rate.total += 1
        metrics = runtime.metrics
        metrics.request_finished(
            ctx.endpoint.name,
            ctx.group or "",
            ctx.served_by or "",
            ctx.status or 499,
            time.perf_counter() - ctx.started,
            ctx.ttfb,
            ctx.overhead(),
        )
        spent = used(ctx)
        if spent.source == "reported" and ctx.reply is not None:
            metrics.count_tokens(ctx.reply.model.name, spent.prompt, spent.completion)
        if ctx.key is not None:
            metrics.key_used(ctx.key.name, spent.prompt, spent.completion, spent.cost, ctx.outcome)
