"""Read the request body within the size limit and check the fields routing needs."""

from __future__ import annotations

import asyncio

from hxgw import jsonio
from hxgw.context import RequestContext
from hxgw.errors import BadRequest, PayloadTooLarge, RequestTimeout
from hxgw.schema import kind_of
from hxgw.types import Next


async def parse_body(ctx: RequestContext, call_next: Next) -> None:
    """Reads the request body; writes ctx.raw_body, ctx.body and ctx.stream.

    The body is held whole (up to `limits.max_body_bytes`) because failover
    must be able to send it again to the next candidate.
    """
    limit = ctx.state.config.limits.max_body_bytes
    ctx.raw_body = await _read_limited(ctx, limit)
    if not ctx.raw_body:
        raise BadRequest("request body is empty: expected a JSON object")
    try:
        body = jsonio.loads(ctx.raw_body)
    except (jsonio.DecodeError, RecursionError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, got {kind_of(body, json=True)}")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest(
            f"'model' must be a string, got {kind_of(model, json=True)}", param="model"
        )
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest(
            f"'stream' must be true or false, got {kind_of(stream, json=True)}", param="stream"
        )
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object", param="stream_options")
    ctx.body = body
    ctx.stream = bool(stream)
    await call_next(ctx)


async def _read_limited(ctx: RequestContext, limit: int) -> bytes:
    request = ctx.request
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the {limit}-byte limit")
    content = request.content
    if content.is_eof():  # the whole body is already here: nothing to wait for
        data = content.read_nowait()
        if len(data) > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
        return data
    chunks: list[bytes] = []
    total = 0
    # aiohttp's idle timer is off while a handler runs: a client that stalls mid-body
    # would hold its handler and connection for ever, so every read gets a deadline.
    idle = ctx.state.config.limits.client_idle_timeout
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await content.readany()
        except TimeoutError:
            raise RequestTimeout(f"the request body stalled for {idle:g}s") from None
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
