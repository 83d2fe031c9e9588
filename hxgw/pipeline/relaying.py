"""Copying an upstream response to the client as it arrives.

Nothing is collected: each chunk is written (and so flushed) as soon as the
upstream sends it. For SSE only an incomplete trailing line is held back, so
that when the upstream fails mid-stream the client never sees half a `data:`
line before the gateway's error event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from hxgw.errors import GatewayError, UpstreamError, UpstreamTimeout
from hxgw.memo import Memo
from hxgw.pipeline.context import Reply, RequestContext
from hxgw.pipeline.exchange import Exchange
from hxgw.upstream.client import UpstreamResponse

# Upstream response headers a client may see; everything else (hop-by-hop,
# server software, upstream spend and key details) stays behind the gateway.
PASSED_RESPONSE_HEADERS = {
    name.lower().encode(): name
    for name in (
        "Content-Type",
        "Retry-After",
        "retry-after-ms",
        "OpenAI-Processing-Ms",
        "OpenAI-Version",
    )
}
PASSED_PREFIXES = (b"x-ratelimit-",)
USAGE_TAIL = 2048
# The longest incomplete SSE line held back while waiting for its newline.
MAX_HELD_LINE = 1024 * 1024


def _client_name_of(raw_name: bytes) -> str | None:
    """The name a client sees an upstream header under, or None when it stays behind."""
    lowered = raw_name.lower()
    name = PASSED_RESPONSE_HEADERS.get(lowered)
    if name is None and lowered.startswith(PASSED_PREFIXES):
        name = raw_name.decode("latin-1")
    return name


# Asked once per spelling: an upstream sends the same names on every response, and
# lowering and matching each one cost about 2k instructions a header.
_client_name = Memo(_client_name_of, 256)


def passed_headers(response: UpstreamResponse) -> dict[str, str]:
    """The upstream's headers a client may see, under the names it sees them by."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in response.raw_headers:
        name = _client_name[raw_name]
        if name is not None and name not in headers:  # the first of a repeated header
            headers[name] = raw_value.decode("latin-1")
    return headers


def response_headers(ctx: RequestContext, reply: Reply) -> dict[str, str]:
    headers = passed_headers(reply.response)
    headers["X-Request-ID"] = ctx.request_id
    headers["X-HX-Model"] = reply.model.name
    if ctx.group:
        headers["X-HX-Group"] = ctx.group
    headers["X-HX-Failovers"] = str(ctx.failovers)
    if ctx.decision is not None:
        headers["X-HX-Route"] = ctx.decision.header()
    return headers


def is_event_stream(reply: Reply) -> bool:
    return reply.response.content_type == "text/event-stream"


async def relay_body(ctx: RequestContext, reply: Reply) -> None:
    """Copy a plain body chunk by chunk. A failure after the headers can only cut the
    connection: the status is already committed."""
    exchange = ctx.exchange
    await exchange.write(reply.first_chunk)
    ctx.client_first_at = time.perf_counter()
    ctx.bytes_out += len(reply.first_chunk)
    # `usage` closes an OpenAI body: the last two chunks hold it, nothing else is kept.
    previous, last = b"", reply.first_chunk
    try:
        async for chunk in _chunks(ctx, reply):
            await exchange.write(chunk)
            ctx.bytes_out += len(chunk)
            previous, last = last, chunk
    except GatewayError as exc:
        _failed(ctx, reply, exc)
        # Closing before the final chunk tells the client the body is incomplete.
        exchange.abort()
        return
    await exchange.finish()
    tail = previous[-USAGE_TAIL:] + last
    if b'"usage"' in tail:
        ctx.usage = tail[tail.rfind(b'"usage"') :]


async def relay_events(ctx: RequestContext, reply: Reply) -> None:
    """Copy an SSE stream, line-aligned; a failing upstream ends it with an error event."""
    exchange = ctx.exchange
    pending = b""
    at_event_end = True
    try:
        chunk = reply.first_chunk
        chunks = _chunks(ctx, reply)
        while True:
            data = pending + chunk if pending else chunk
            cut = data.rfind(b"\n") + 1
            if not cut and len(data) > MAX_HELD_LINE:
                cut = len(data)  # no line is this long: pass it through rather than hold it
            pending = data[cut:]
            if cut:
                block = data[:cut] if pending else data
                await exchange.write(block)
                if ctx.client_first_at is None:
                    ctx.client_first_at = time.perf_counter()
                ctx.bytes_out += cut
                at_event_end = block.endswith((b"\n\n", b"\r\n\r\n")) or block in (b"\n", b"\r\n")
                if b'_tokens"' in block and b'"usage"' in block:
                    ctx.usage = block  # the usage chunk: counted once, at the end
            chunk = await anext(chunks, b"")
            if not chunk:
                break
        if pending:
            # The upstream ended in the middle of a line: that line is not an event.
            raise UpstreamError("the upstream ended the stream in the middle of an event")
    except GatewayError as exc:
        _failed(ctx, reply, exc)
        await write_error_event(exchange, exc, at_event_end)
    await exchange.finish()


def _failed(ctx: RequestContext, reply: Reply, exc: GatewayError) -> None:
    ctx.outcome = exc.code or exc.type
    ctx.stream_failed = True
    kind = "stream_timeout" if isinstance(exc, UpstreamTimeout) else "stream_reset"
    ctx.state.runtime.metrics.upstream_errors.labels(reply.model.name, kind).inc()


async def write_error_event(exchange: Exchange, exc: GatewayError, at_event_end: bool) -> None:
    """End an SSE stream with `event: error` carrying the OpenAI error object.

    OpenAI's SDKs raise an APIError for such an event instead of waiting
    for `[DONE]`."""
    prefix = b"" if at_event_end else b"\n"
    await exchange.write(prefix + b"event: error\ndata: " + exc.to_json() + b"\n\n")


async def _chunks(ctx: RequestContext, reply: Reply) -> AsyncIterator[bytes]:
    """The rest of the upstream body; stalls and resets become GatewayErrors."""
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
                raise UpstreamTimeout(
                    "the upstream did not finish within the total timeout"
                ) from None
            raise UpstreamTimeout(f"the upstream sent nothing for {timeouts.idle:g}s") from None
        except OSError as exc:
            raise UpstreamError(f"the upstream connection failed mid-response: {exc}") from None
        if not chunk:
            return
        yield chunk
