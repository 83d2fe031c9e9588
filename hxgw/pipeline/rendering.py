"""Turn a failed request into OpenAI error JSON, and never show a stack trace."""

from __future__ import annotations

import structlog

from hxgw.errors import GatewayError, KeyLimited, MethodNotAllowed, UpstreamAnswer
from hxgw.pipeline.context import RequestContext
from hxgw.types import Next

log = structlog.get_logger("hxgw.errors")


async def render_errors(ctx: RequestContext, call_next: Next) -> None:
    """Catches GatewayError (and any bug) from later steps; writes the response and ctx.status."""
    try:
        await call_next(ctx)
    except GatewayError as exc:
        _respond(ctx, exc)
    except Exception:
        log.exception("unexpected error")
        _respond(ctx, GatewayError(f"internal error (request id {ctx.request_id})"))


def _respond(ctx: RequestContext, exc: GatewayError) -> None:
    if ctx.exchange.committed:
        # The relay already committed a status; it reports its own failures in-band.
        return
    if isinstance(exc, UpstreamAnswer):
        status, headers = exc.answer_status, exc.headers | {"X-Request-ID": ctx.request_id}
        ctx.outcome = "rate_limited" if status == 429 else "upstream_error"
    else:
        status, headers = exc.status, error_headers(ctx, exc)
        ctx.outcome = exc.code or exc.type
    ctx.status = status
    own = ctx.endpoint.dialect == "anthropic" and not isinstance(exc, UpstreamAnswer)
    body = exc.to_anthropic_json() if own else exc.to_json()
    ctx.bytes_out = len(body)
    ctx.exchange.respond(status, headers, body)


def error_headers(ctx: RequestContext, exc: GatewayError) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Request-ID": ctx.request_id}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="hxgw"'
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = exc.allow
    retry_after = exc.extra.get("retry_after")
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if isinstance(exc, KeyLimited):
        headers.update(exc.headers)
    return headers
