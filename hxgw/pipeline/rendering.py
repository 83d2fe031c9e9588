"""Turn a failed request into the error JSON of its route's API (OpenAI's, Anthropic's),
and never show a stack trace. A stream already under way ends with an error event
instead (pipeline.answer.error_event)."""

from __future__ import annotations

import asyncio

import structlog

from hxgw.error_shapes import openai_shaped
from hxgw.errors import (
    LONGEST_SDK_WAIT,
    GatewayError,
    KeyLimited,
    MethodNotAllowed,
    Unavailable,
    UnsupportedEncoding,
    UpstreamAnswer,
)
from hxgw.pipeline.answer.upstream_headers import route_headers, with_key_limits
from hxgw.pipeline.client_request import ACCEPT_ENCODING
from hxgw.pipeline.context import Next, RequestContext
from hxgw.pipeline.failover.failures import retry_helps

log = structlog.get_logger("hxgw.errors")


async def render_errors(ctx: RequestContext, call_next: Next) -> None:
    """Catches GatewayError (and any bug) from later steps; writes the response and ctx.status."""
    try:
        await call_next(ctx)
    except GatewayError as exc:
        _respond(ctx, exc)
    except asyncio.CancelledError:
        if not _stopped_unanswered(ctx):
            raise
        # The drain's own cancel, of a request with no answer yet: it gets one, and the
        # handler returns for aiohttp to send it.
        assert ctx.task is not None
        ctx.task.uncancel()
        _respond(ctx, Unavailable("the gateway is stopping: try again", retry_after=1))
        ctx.outcome = "cancelled"
    except Exception:
        log.exception("unexpected error")
        _respond(ctx, GatewayError(f"internal error (request id {ctx.request_id})"))


def _stopped_unanswered(ctx: RequestContext) -> bool:
    """Whether a cancel is the drain's, at its timeout, of a request not answered yet
    whose client still waits (a client that left is cancelled too, by aiohttp)."""
    exchange = ctx.exchange
    return (
        ctx.state.runtime.inflight.draining
        and not exchange.committed
        and not exchange.client_gone()
        and ctx.task is not None
    )


def note_error(ctx: RequestContext, exc: GatewayError) -> None:
    """The request's status and outcome as its answer to `exc` will say them: set before
    the answer is written by a step that works out what the request used meanwhile
    (pipeline.limits: a request that timed out still pays the prompt the model read)."""
    if ctx.exchange.committed:
        return  # the relay already committed a status; it reports its failures in-band
    if isinstance(exc, UpstreamAnswer):
        ctx.status = exc.answer_status
        ctx.outcome = "rate_limited" if ctx.status == 429 else "upstream_error"
    else:
        ctx.status, ctx.outcome = exc.status, exc.code or exc.type


def _respond(ctx: RequestContext, exc: GatewayError) -> None:
    if ctx.exchange.committed:
        # The relay already committed a status; it reports its own failures in-band.
        return
    note_error(ctx, exc)
    status = ctx.status
    if isinstance(exc, UpstreamAnswer):
        headers = exc.headers | {"X-Request-ID": ctx.request_id}
        if not retry_helps(exc) and "x-should-retry" not in headers:
            headers["x-should-retry"] = "false"
        # The model whose answer this is, for the access line and the ledger.
        ctx.served_by = ctx.served_by or headers.get("X-HX-Model")
    else:
        headers = error_headers(ctx, exc)
    if ctx.limit_headers and not isinstance(exc, KeyLimited):
        # The key's limits: this request counted against them.
        headers = with_key_limits(headers, ctx.limit_headers)
    if ctx.decision is not None:  # routed: where it went, as a relayed answer says
        route_headers(ctx, headers)
    anthropic = ctx.speaks_anthropic()
    if anthropic:
        headers["request-id"] = ctx.request_id  # what Anthropic's SDK reads as the request id
    if anthropic and "Content-Encoding" not in headers:
        body = exc.to_anthropic_json(ctx.request_id)
        headers["Content-Type"] = "application/json"
    elif isinstance(exc, UpstreamAnswer) and "Content-Encoding" not in headers:
        # A lone model's error that would have failed over (a proxy's HTML 502) is no
        # more readable to an OpenAI SDK than one relayed (hxgw.pipeline.relay).
        body = openai_shaped(exc.answer_status, exc.body)
        headers["Content-Type"] = "application/json"
    else:
        body = exc.to_json()
    ctx.bytes_out = len(body)
    ctx.exchange.respond(status, headers, body)


def error_headers(ctx: RequestContext, exc: GatewayError) -> dict[str, str]:
    """The headers of the gateway's own error answer."""
    headers = {"Content-Type": "application/json", "X-Request-ID": ctx.request_id}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="hxgw"'
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = exc.allow
    if isinstance(exc, UnsupportedEncoding):
        headers["Accept-Encoding"] = ACCEPT_ENCODING
    retry_after = exc.extra.get("retry_after")
    if not exc.retry_helps or (retry_after is not None and retry_after > LONGEST_SDK_WAIT):
        headers["x-should-retry"] = "false"
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if isinstance(exc, KeyLimited):
        headers.update(exc.headers)
    return headers
