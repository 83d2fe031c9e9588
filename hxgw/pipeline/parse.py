"""Read the request body within the size limit and check the fields routing needs."""

from __future__ import annotations

from collections.abc import Awaitable

from hxgw import jsonio
from hxgw.config.reader import kind_of
from hxgw.errors import BadRequest
from hxgw.pipeline.context import Next, RequestContext
from hxgw.pipeline.shapes import check_shape


def parse_body(ctx: RequestContext, call_next: Next) -> Awaitable[None]:
    """Reads the request body; writes ctx.raw_body, ctx.body and ctx.stream.

    The body is held whole (up to `limits.max_body_bytes`) because failover
    must be able to send it again to the next candidate.
    """
    raw = ctx.exchange.body_now(ctx.state.config.limits.max_body_bytes)
    if raw is None:
        return _read_then_parse(ctx, call_next)
    _parse(ctx, raw)
    return call_next(ctx)


async def _read_then_parse(ctx: RequestContext, call_next: Next) -> None:
    limits = ctx.state.config.limits
    raw = await ctx.exchange.read_body(
        limits.max_body_bytes, limits.client_idle_timeout, limits.body_timeout
    )
    _parse(ctx, raw)
    await call_next(ctx)


def _parse(ctx: RequestContext, raw: bytes) -> None:
    ctx.raw_body = raw
    if not raw:
        raise BadRequest("request body is empty: expected a JSON object")
    try:
        body = jsonio.loads(raw)
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
    check_shape(ctx.endpoint, body)
    ctx.body = body
    ctx.stream = bool(stream)
