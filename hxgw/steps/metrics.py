"""Prometheus counters and histograms for every request, however it ends."""

from __future__ import annotations

import time

from hxgw.context import RequestContext
from hxgw.types import Next


async def record_metrics(ctx: RequestContext, call_next: Next) -> None:
    """Reads ctx.status, served model, group, ttfb and the overhead marks; writes only metrics."""
    try:
        await call_next(ctx)
    finally:
        runtime = ctx.state.runtime
        runtime.rate.count()
        metrics = runtime.metrics
        endpoint, model = ctx.endpoint.name, ctx.served_by or ""
        metrics.requests.labels(endpoint, ctx.group or "", model, str(ctx.status or 499)).inc()
        metrics.duration.labels(endpoint, model).observe(time.perf_counter() - ctx.started)
        if ctx.ttfb is not None:
            metrics.ttfb.labels(endpoint, model).observe(ctx.ttfb)
        overhead = ctx.overhead()
        if overhead is not None:
            metrics.overhead.observe(overhead)
        if ctx.usage and ctx.reply:
            metrics.count_tokens(ctx.reply.model.name, ctx.usage)
