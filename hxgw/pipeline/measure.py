"""Prometheus counters and histograms for every request, however it ends: each API
request, each request no route takes, each refusal of the operator's routes."""

from __future__ import annotations

import time

from hxgw.pipeline.billing.usage import used
from hxgw.pipeline.context import Next, RequestContext


async def record_metrics(ctx: RequestContext, call_next: Next) -> None:
    """Reads ctx.status, served model, group, key, ttfb, the overhead marks and what the
    request used; writes only metrics. A request the gateway refused before it asked an
    upstream (ctx.sent_at unset, no success) is counted but not put in the latency
    histograms, whose quantiles then say how fast the upstreams' requests were served."""
    try:
        await call_next(ctx)
    finally:
        runtime = ctx.state.runtime
        runtime.rate.total += 1
        metrics = runtime.metrics
        status = ctx.status or 499
        if ctx.sent_at is not None or status < 400:  # an upstream was asked, or it served
            metrics.request_finished(
                ctx.endpoint.name,
                ctx.group or "",
                ctx.model_named() or "",
                status,
                time.perf_counter() - ctx.started,
                ctx.ttfb,
                ctx.overhead(),
            )
        else:  # refused before any upstream was asked: counted, not timed
            metrics.request_counted(ctx.endpoint.name, status, ctx.group or "")
        spent = used(ctx)
        if spent.source == "reported" and ctx.reply is not None:
            metrics.count_tokens(ctx.reply.model.name, spent.prompt, spent.completion)
        if ctx.key is not None:
            metrics.key_used(ctx.key.name, spent.prompt, spent.completion, spent.cost, ctx.outcome)


async def count_unrouted(ctx: RequestContext, call_next: Next) -> None:
    """Reads ctx.endpoint (one of the unrouted ones: its name, never the path, is the
    label, so a scanner's paths make no series) and ctx.status; writes only metrics."""
    try:
        await call_next(ctx)
    finally:
        ctx.state.runtime.metrics.request_counted(ctx.endpoint.name, ctx.status or 499)


async def count_operator_refusals(ctx: RequestContext, call_next: Next) -> None:
    """Reads ctx.endpoint and ctx.status; writes only metrics, for the operator's route's
    refusals (4xx: a scraper's wrong key, an application's key where it has no place).
    Its other answers are not counted: a probe's or a scrape's are not traffic, and a
    503 of /readyz is an answer, not an error."""
    try:
        await call_next(ctx)
    finally:
        if 400 <= ctx.status < 500:
            ctx.state.runtime.metrics.request_counted(ctx.endpoint.name, ctx.status)
