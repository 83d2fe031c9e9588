"""Send the request upstream, failing over until a candidate produces a first byte.

Each candidate first takes a turn at its upstream's gate (its cap on requests
in flight, hxgw.upstream.admission); one that cannot get a turn in time is shed
and the next candidate tried. Failover is only possible while nothing has
reached the client, so a candidate counts as answered once its response has produced a first body
byte (not merely headers): a reset between headers and body still moves on
to the next model. Connect errors, timeouts, 401/403/408/429 and 5xx are
retryable, and, when there is more than one candidate, an answer that begins as no
answer (`unserved`; `opening` for a stream's first event); any other status is
the request's own fault and goes to the client as the upstream said it
(`failed_candidate` says what each kind of failure does, `failures` what a client gets
when no candidate served).

An upload (hxgw.pipeline.uploads.upload) is streamed, not held: once a candidate has
taken bytes of it straight from the client, they cannot be sent again, so it
fails over only before that — connect errors, a shed at the gate, or any
failure while the whole form was still held. After that the upstream's error
goes to the client as it came, or the gateway's 502/504 says what failed.
"""

from __future__ import annotations

import dataclasses
import time

from hxgw.errors import UpstreamTimeout
from hxgw.pipeline.context import Next, Reply, RequestContext
from hxgw.pipeline.failover.attempt import Tries
from hxgw.pipeline.failover.failures import all_failed
from hxgw.pipeline.failover.sending import request_headers
from hxgw.usage.schema import LEFT


async def forward(ctx: RequestContext, call_next: Next) -> None:
    """Reads ctx.candidates and ctx.upstream_bodies; writes ctx.reply, ctx.served_by,
    ctx.failovers, ctx.ttfb, and the times the overhead figure is made of (ctx.queued at
    an upstream's cap, ctx.sent_at, ctx.upstream_first_at).

    The upstream response is closed on every way out but a complete read, so a
    client that leaves (its handler is cancelled) aborts the upstream request
    at once instead of letting the model generate for nobody.
    """
    ctx.reply = reply = await open_reply(ctx)
    ctx.served_by = reply.model.name
    response = reply.response
    try:
        await call_next(ctx)
    finally:
        if response.at_eof():
            response.release()
        else:
            response.close()
        if ctx.model_failed:
            reply.health.failed(time.monotonic(), token=reply.token)
        elif ctx.outcome in LEFT or ctx.outcome == "cancelled" or ctx.stream_failed:
            reply.health.finished_other(reply.token)
        else:
            reply.health.succeeded(time.perf_counter() - ctx.started, reply.token)


async def open_reply(ctx: RequestContext) -> Reply:
    """Try each candidate in order; return the first response that produced a body byte.
    Whether each 500 on the way was its model's fault is known only then (`blame`)."""
    skipped = ctx.decision.skipped if ctx.decision is not None else ()
    tries = Tries(ctx, request_headers(ctx), lone=len(ctx.candidates) + len(skipped) == 1)
    try:
        reply = await _first_answer(tries)
    except BaseException:
        tries.blame.settle(tries.failed, served=False)
        raise
    tries.blame.settle(tries.failed, served=True)
    return reply


async def _first_answer(tries: Tries) -> Reply:
    ctx, failed = tries.ctx, tries.failed
    metrics = ctx.state.runtime.metrics
    last = len(ctx.candidates) - 1
    tried = ""  # the last model tried: the one a failover moves from
    for position, model in enumerate(ctx.candidates):
        budget = ctx.state.first_byte_budget(ctx.started, ctx.stream)
        if budget <= 0:
            break  # the total timeout is spent: the rest are not tried, nor blamed
        health = ctx.state.runtime.memory.health[model.name]
        if not health.allows(time.monotonic()) and (failed or position < last):
            # Its circuit turned half-open and another request took the one probe (or it
            # stalled) since the route was decided; the only try left goes all the same.
            continue
        if model.upstream in tries.passed_over:
            # Behind a gate that shed it, or an upstream that took no connection: that
            # one's failure is its own too (not tried, nor counted against it).
            unreachable = tries.passed_over[model.upstream]
            if unreachable is not None:
                failed.append(dataclasses.replace(unreachable, model=model.name))
            continue
        if failed:  # moving on: what failed before the last candidate counts, not after it
            ctx.failovers += 1
            metrics.failovers.labels(ctx.group or "", tried, model.name).inc()
        else:
            ctx.sent_at = time.perf_counter()
        tried = model.name
        # The last one's too, after others failed: all failing alike is said as one
        # (every one overloaded: Anthropic's 529).
        came = await tries.at(model, budget, looks=position < last or bool(failed))
        if isinstance(came, Reply):
            return came
        if came == "stop":
            break
    if not failed:
        raise UpstreamTimeout("the request's total timeout ran out before an upstream answered")
    raise all_failed(failed)
