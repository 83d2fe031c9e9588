"""Relay an upstream's Server-Sent Events to the client as they arrive.

Only an incomplete trailing line is held back, so that when the upstream fails
mid-stream the client never sees half a `data:` line before the gateway's error
event; and a stream that stops before its API's final event (`[DONE]`,
`message_stop`, `response.completed`) gets that error event too, as its end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from hxgw.errors import GatewayError, TotalTimeout, UpstreamError, UpstreamTimeout
from hxgw.pipeline.answer.end_watch import EndWatch
from hxgw.pipeline.answer.error_event import write_error_event
from hxgw.pipeline.answer.lines import HeldLine, open_closer, rest_of_end
from hxgw.pipeline.answer.stream_end import data_lines
from hxgw.pipeline.answer.usage_chunk import HiddenUsage
from hxgw.pipeline.context import Reply, RequestContext

USAGE_KEPT = 64 * 1024
"""The most of a stream's usage events kept: an upstream that sends more is not believed."""
AFTER_DONE = 1.0
"""How long the body's end is waited for once the final event (StreamEnd) or `[DONE]`
has come. Nothing follows, and an upstream that leaves its body open after it must not
hold the client (the SDKs read a stream to its end) for the idle timeout, then count as
failed for a whole answer."""


async def relay_events(ctx: RequestContext, reply: Reply) -> None:
    """Copy an SSE stream, line-aligned; a failing upstream, or one that stops before
    its final event, ends it with an error event."""
    exchange = ctx.exchange
    pending = HeldLine()  # an unfinished line: never half a `data:` line to the client
    tail = b""  # the stream's last bytes relayed: what ctx.closer is judged on
    watch = EndWatch(ctx.endpoint, ctx.body)
    hidden = HiddenUsage() if ctx.hidden_usage else None
    try:
        chunk = reply.first_chunk
        chunks = upstream_chunks(ctx, reply)
        while True:
            if watch.done and not ctx.closer:
                # Past the final event, once ended, nothing is the answer's: the anthropic
                # SDKs raise on an `error` event wherever it comes (a whole answer lost).
                chunk = rest_of_end(tail, pending, chunk)
            block = pending.whole_lines(chunk)
            if block:
                if ctx.rebind is not None:
                    block = ctx.rebind.events(block, reply.model)
                if b'_tokens"' in block and b'"usage"' in block:
                    # OpenAI sends one usage chunk; Anthropic two (input tokens at the
                    # start, output at the end): each is kept, and counted at the end. Past
                    # the cap (a usage on every chunk), the start and the newest are kept.
                    ctx.usage += block
                    if len(ctx.usage) > USAGE_KEPT:
                        half = USAGE_KEPT // 2
                        ctx.usage = ctx.usage[:half] + ctx.usage[-half:]
                if hidden is not None:
                    block = hidden.strip(block)
                lines = data_lines(block)
                end, failed = watch.see(block, lines, tail)
                if failed:
                    # Relayed as the upstream sent it, but no success for the model.
                    said = UpstreamError("the upstream ended the stream with an error event")
                    mark_failed(ctx, reply, said, kind="stream_error")
                if end is not None and end < len(block):
                    # What follows the stream's end in the same read is no part of it (an
                    # error event there would make the anthropic SDKs drop a whole answer).
                    block = block[:end]
                    lines = data_lines(block)
                await exchange.write(block)
                if ctx.client_first_at is None:
                    ctx.client_first_at = time.perf_counter()
                ctx.bytes_out += len(block)
                ctx.events += lines
                ctx.answered = watch.done
                tail = (tail + block[-4:])[-4:]  # not a copy of the whole block
                ctx.closer = open_closer(tail, block)
            if not watch.done:
                chunk = await anext(chunks, b"")
            else:
                try:
                    async with asyncio.timeout(AFTER_DONE):
                        chunk = await anext(chunks, b"")
                except TimeoutError:  # whole; its connection is closed (pipeline.forward)
                    if ctx.closer:  # a [DONE] line left open: its event is ended
                        await exchange.write(ctx.closer)
                    break
            if not chunk:
                break
        if pending or watch.named_only:
            # The upstream ended in the middle of a line, or of the final event (its name
            # without its data): not an event the client can read.
            raise UpstreamError("the upstream ended the stream in the middle of an event")
        if not watch.ended:
            # A clean end all the same: the client must not take what came for the whole.
            raise UpstreamError("the upstream ended the stream before its final event")
    except GatewayError as exc:
        if not watch.done:
            if not ctx.stream_failed:  # not already, by an error event's name alone
                mark_failed(ctx, reply, exc)
            await write_error_event(ctx, exc, ctx.closer)
        elif ctx.closer:  # broken after its final event, the answer is whole: that event is ended
            await exchange.write(ctx.closer)
    await exchange.finish()


def mark_failed(
    ctx: RequestContext, reply: Reply, exc: GatewayError, kind: str | None = None
) -> None:
    """Record a stream the upstream broke: the request's outcome, the model's failure (its
    error series, a warning). The gateway's own total timeout is none of the model's: the
    outcome says it, and an alert on upstream errors does not fire for a long answer."""
    ctx.outcome = exc.code or exc.type
    ctx.stream_failed = True
    ctx.model_failed = not isinstance(exc, TotalTimeout)
    if not ctx.model_failed:
        return
    kind = kind or ("stream_timeout" if isinstance(exc, UpstreamTimeout) else "stream_reset")
    ctx.state.runtime.metrics.upstream_errors.labels(reply.model.name, kind).inc()
    # As a failure before the first byte is: `journalctl -p warning` shows both.
    reply.health.warn("upstream failed mid-response", model=reply.model.name, error=exc.message)


async def upstream_chunks(ctx: RequestContext, reply: Reply) -> AsyncIterator[bytes]:
    """The rest of the upstream body; stalls and resets become GatewayErrors. A read
    waits under asyncio.timeout, not the shared deadlines of hxgw.upstream.deadlines:
    a stream's reads are each a model's token or more apart, where a timer's 12 µs is
    nothing, and one timer a read keeps the wait as simple as asyncio's."""
    content = reply.response
    timeouts = ctx.state.config.timeouts
    deadline = ctx.started + timeouts.total
    while True:
        wait = min(timeouts.idle, deadline - time.perf_counter())
        try:
            async with asyncio.timeout(max(wait, 0.0)):
                chunk = await content.readany()
        except TimeoutError:
            if wait < timeouts.idle:
                raise TotalTimeout("the upstream did not finish within the total timeout") from None
            raise UpstreamTimeout(f"the upstream sent nothing for {timeouts.idle:g}s") from None
        except OSError as exc:
            raise UpstreamError(f"the upstream connection failed mid-response: {exc}") from None
        if not chunk:
            return
        yield chunk
