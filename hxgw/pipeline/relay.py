"""Write the upstream's response to the client as it arrives: status, headers,
then body or SSE (`hxgw.pipeline.answer.events`).

Nothing is collected: each chunk is written (and so flushed) as soon as the
upstream sends it. Only answers the gateway must change (ids rebound, an error
put in its route's shape: any on Anthropic's routes, one that is not JSON on the
others) are read whole first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable

from hxgw.error_shapes import anthropic_shaped, openai_shaped
from hxgw.errors import GatewayError, Unavailable, UpstreamError
from hxgw.pipeline.answer.error_answer import DECODED, MAX_ANSWER, decoded, masked, upstream_key
from hxgw.pipeline.answer.error_event import write_error_event
from hxgw.pipeline.answer.events import mark_failed, relay_events, upstream_chunks
from hxgw.pipeline.answer.lines import data_line
from hxgw.pipeline.answer.upstream_headers import response_headers
from hxgw.pipeline.billing.reported_usage import last_usage, messages_usage
from hxgw.pipeline.context import Next, Reply, RequestContext
from hxgw.pipeline.whole_response import NO_BODY_STATUS
from hxgw.upstream import UpstreamResponse

USAGE_TAIL = 64 * 1024
"""How far from a plain body's end its usage is looked for. A Responses answer puts its
`user` and `metadata` after it: up to 16 values of 512 characters, more when escaped."""
WRITE_GRACE = 2.0
"""How long past the total timeout an answer's writes may wait on a client that reads
no more (a stream cut by the total timeout still writes its error event)."""


def relay(ctx: RequestContext, call_next: Next) -> Awaitable[None]:
    """Reads ctx.reply and ctx.rebind; writes the response, ctx.status, ctx.bytes_out,
    ctx.client_first_at, ctx.outcome, ctx.stream (an answer in events is a stream) and
    ctx.usage (the upstream's usage object, for the ledger and the limits); an answer
    cut short sets ctx.stream_failed (and ctx.model_failed, unless the total timeout
    cut it)."""
    assert ctx.reply is not None
    reply = ctx.reply
    coding = reply.response.content_encoding  # read with the framing: no header lookup
    status = reply.response.status
    if coding and ctx.rebind is not None and status < 400:
        raise UpstreamError(
            f"the upstream encoded its answer ({coding}) though the gateway asked it not to:"
            " the ids in it cannot be rebound"
        )
    # An encoded stream (gzip despite Accept-Encoding: identity) has no lines to align
    # to, and an error event in plain text would corrupt it: it goes as a plain body. A
    # 204 or 304 has no body, whatever its type says: an error event after its head would
    # be read by the client as the start of its next response. An error status is no
    # stream either, whatever its type: its body is the upstream's error, whole.
    streaming = (
        reply.is_event_stream() and not coding and status < 400 and status not in NO_BODY_STATUS
    )
    if not streaming and reply.response.at_eof():
        # The whole body came with the first read: answer it in one write.
        _whole_body(ctx, reply, reply.first_chunk)
        return call_next(ctx)
    if not streaming and ctx.rebind is not None:
        return _whole_then_next(ctx, reply, ctx.rebind.max_body, call_next)
    if not streaming and status >= 400 and (not coding or _decodable(reply.response)):
        # An error is read whole (its first MAX_ANSWER bytes): decoded, put in its route's
        # shape, or with the gateway's key masked should it quote it, over however many
        # reads. An encoded one is never cut (the rest of it would not decode): one
        # longer than its Content-Length said is a 502.
        return _whole_then_next(ctx, reply, MAX_ANSWER, call_next, cut=not coding)
    return _relay_then_next(ctx, reply, streaming, call_next)


async def _whole_then_next(
    ctx: RequestContext, reply: Reply, limit: int, call_next: Next, *, cut: bool = False
) -> None:
    """A JSON answer whose ids are rebound, or an error put in its route's shape: read
    whole (the upstream sends it only once it is complete, so holding it costs its
    transfer time), then answered at once; a 502 past `limit`, without reading any
    when its length says so. An error (`cut`) keeps its status past `limit` instead:
    its first `limit` bytes are put in shape (its message is cut to 1,000 characters
    anyway), and the rest is never read."""
    declared = reply.response.content_length
    too_large = UpstreamError(f"the upstream's answer is over {limit} bytes")
    if declared is not None and declared > limit and not cut:
        raise too_large
    body = bytearray(reply.first_chunk)
    try:
        async for chunk in upstream_chunks(ctx, reply):
            body += chunk
            if len(body) > limit and cut:
                del body[limit:]  # its connection is closed, not reused (release)
                break
            if len(body) > limit:
                raise too_large
    except GatewayError as exc:
        if exc is not too_large:  # the model broke off its answer: its health hears it
            mark_failed(ctx, reply, exc)
        raise
    _whole_body(ctx, reply, bytes(body))
    await call_next(ctx)


async def _relay_then_next(
    ctx: RequestContext, reply: Reply, streaming: bool, call_next: Next
) -> None:
    await _relay_as_it_comes(ctx, reply, streaming)
    await call_next(ctx)


async def _relay_as_it_comes(ctx: RequestContext, reply: Reply, streaming: bool) -> None:
    headers = response_headers(ctx, reply)
    if streaming:
        # What the answer is decides: a form's `stream` field is never read (the form
        # is scanned only up to its model), and the ledger says what was streamed.
        ctx.stream = True
        headers["Cache-Control"] = "no-cache"
        headers["X-Accel-Buffering"] = "no"
    ctx.status = status = reply.response.status
    if status >= 400:
        ctx.outcome = "upstream_error"
    exchange = ctx.exchange
    # The upstream's reads end by the total timeout; a client that stops reading would
    # hold its writes, and the upstream's slot, for as long as it stays connected.
    left = ctx.started + ctx.state.config.timeouts.total + WRITE_GRACE - time.perf_counter()
    try:
        with ctx.state.runtime.deadlines.after(left, ctx.task):
            length = None if streaming else reply.response.content_length
            await exchange.start(status, headers, length)
            if streaming:
                await _relay_stream(ctx)
            else:
                await relay_body(ctx, reply)
    except TimeoutError:
        ctx.outcome = "client_stalled"
        exchange.drop()
        return
    except ConnectionResetError:
        if not ctx.answered:
            ctx.outcome = "client_gone"
        return
    except asyncio.CancelledError:
        if exchange.client_gone():
            if not ctx.answered:  # one with the whole answer is not counted gone
                ctx.outcome = "client_gone"
        elif exchange.committed:
            # Cancelled with the client still there: the drain timeout ran out. A plain
            # answer is cut short (its length says so); a stream is told why.
            ctx.outcome = "cancelled"
            if streaming:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1):
                        # What the stream left open is ended first: a line, or an event
                        # whose last read ended inside a CRLF.
                        stopped = Unavailable("the gateway stopped this stream")
                        await write_error_event(ctx, stopped, ctx.closer)
                        await exchange.finish()
        raise


async def _relay_stream(ctx: RequestContext) -> None:
    assert ctx.reply is not None
    runtime = ctx.state.runtime
    runtime.metrics.active_streams.inc()
    runtime.rate.streams += 1
    try:
        await relay_events(ctx, ctx.reply)
    finally:
        runtime.metrics.active_streams.dec()
        runtime.rate.streams -= 1


def _whole_body(ctx: RequestContext, reply: Reply, body: bytes) -> None:
    headers = response_headers(ctx, reply)
    status = reply.response.status
    coding = reply.response.content_encoding
    if status >= 400 and coding and (plain := decoded(body, coding)) is not None:
        body, coding = plain, ""
        del headers["Content-Encoding"]
    if ctx.rebind is not None:
        body = ctx.rebind.body(body, reply.model)
    if status >= 400:  # a 400 may quote the key it was sent: the gateway's
        body = masked(body, upstream_key(ctx.state.config, reply.model))
    if status >= 400 and not coding and _reshaped(ctx, reply):
        if reply.is_event_stream():  # an error sent as events: its data is the error
            body = _first_data(body)
        anthropic = ctx.endpoint.dialect == "anthropic"
        body = (
            anthropic_shaped(status, body, ctx.request_id)
            if anthropic
            else openai_shaped(status, body)
        )
        headers["Content-Type"] = "application/json"
    ctx.exchange.respond(reply.response.status, headers, body)
    ctx.status, ctx.bytes_out = reply.response.status, len(body)
    ctx.client_first_at = time.perf_counter()
    if ctx.status >= 400:
        ctx.outcome = "upstream_error"
    _find_usage(ctx, body, body, whole=True)


def _decodable(response: UpstreamResponse) -> bool:
    """Whether an encoded error may be read whole to be decoded: in a coding the gateway
    decodes, and said to be no longer than it reads. One longer, or of a length not said
    (chunked), goes as it came: read in part, it could be neither decoded nor sent."""
    length = response.content_length
    return response.content_encoding in DECODED and length is not None and length <= MAX_ANSWER


def _first_data(body: bytes) -> bytes:
    """The data of an event-stream body's first `data:` line; the body itself when it
    has none."""
    line = data_line(body.splitlines())
    return body if line is None else line[5:].strip()


def _reshaped(ctx: RequestContext, reply: Reply) -> bool:
    """Whether an upstream's error (decoded) is one that the client gets in its API's
    shape: any on an Anthropic route (`error_shapes.anthropic_shaped`), one that is not
    JSON on the others (`error_shapes.openai_shaped`)."""
    return ctx.endpoint.dialect == "anthropic" or "json" not in reply.response.content_type


async def relay_body(ctx: RequestContext, reply: Reply) -> None:
    """Copy a plain body chunk by chunk. A failure after the headers can only cut the
    connection: the status is already committed."""
    exchange = ctx.exchange
    await exchange.write(reply.first_chunk)
    ctx.client_first_at = time.perf_counter()
    ctx.bytes_out += len(reply.first_chunk)
    # `usage` is near a body's end: the chunks of its last USAGE_TAIL bytes are kept.
    recent, held, whole = deque([reply.first_chunk]), len(reply.first_chunk), True
    try:
        async for chunk in upstream_chunks(ctx, reply):
            await exchange.write(chunk)
            ctx.bytes_out += len(chunk)
            recent.append(chunk)
            held += len(chunk)
            while held - len(recent[0]) >= USAGE_TAIL:
                held -= len(recent.popleft())
                whole = False
    except GatewayError as exc:
        mark_failed(ctx, reply, exc)
        # Closing before the final chunk tells the client the body is incomplete.
        exchange.abort()
        return
    await exchange.finish()
    _find_usage(ctx, reply.first_chunk, b"".join(recent), whole)


def _find_usage(ctx: RequestContext, head: bytes, tail: bytes, whole: bool) -> None:
    """ctx.usage of a plain answer, of which `head` is the start and `tail` the end (the
    whole answer when `whole`)."""
    if not ctx.endpoint.billed:
        return
    if ctx.endpoint.dialect == "anthropic":
        if b'"usage"' in tail or b'"usage"' in head:
            ctx.usage = messages_usage(head, tail, whole)
    elif b'"usage"' in tail:
        ctx.usage = last_usage(tail[-USAGE_TAIL:])
