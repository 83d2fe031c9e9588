"""Refuse a request no route takes: 404, or 405 when its path is served with another
method (a browser's CORS preflight is answered before, by `preflight`). And a request for
Anthropic's Files API, whose paths are OpenAI's files API's, which is the one served."""

from __future__ import annotations

from collections.abc import Awaitable

from hxgw.endpoints import ALLOWED, FILES_PREFIXES, allowed_methods
from hxgw.errors import MethodNotAllowed, NotFound, did_you_mean
from hxgw.pipeline.context import Next, RequestContext

ROOTS = frozenset({"/", "/v1", "/v1/"})
"""The gateway's own address, as a browser or a first curl asks for it: told where to go."""
ROOT_HINT = ": the API is under /v1 (/openapi.json lists its routes); the status page is /status"


def refuse_anthropic_files(ctx: RequestContext, call_next: Next) -> Awaitable[None]:
    """Anthropic's Files API (its SDK's `beta.files`) has OpenAI's paths; the gateway
    serves OpenAI's. Its client is told so in its own shape: answered in OpenAI's, its
    SDK read a list as empty and an upload as missing its parameters."""
    exchange = ctx.exchange
    if exchange.header("anthropic-version") is not None and exchange.path.startswith(
        FILES_PREFIXES
    ):
        raise NotFound(
            f"Anthropic's Files API is not served here: {exchange.path} is OpenAI's files "
            "API (leave out anthropic-version to use it); put the file's content in the "
            "message instead"
        )
    return call_next(ctx)


async def refuse_unrouted(ctx: RequestContext, call_next: Next) -> None:
    """Reads the request's method and path; raises NotFound or MethodNotAllowed."""
    exchange = ctx.exchange
    allowed = allowed_methods(exchange.path)
    if allowed is None:
        hint = ROOT_HINT if exchange.path in ROOTS else did_you_mean(exchange.path, ALLOWED)
        if exchange.path.startswith("/v1/v1/"):
            # A base URL given with /v1 to an SDK that adds its own (Anthropic's does).
            hint += ": the client adds /v1 itself, so leave it out of its base URL"
        raise NotFound(f"no such route: {exchange.method} {exchange.path}{hint}")
    raise MethodNotAllowed(
        f"{exchange.method} is not allowed on {exchange.path}; use {allowed}", allow=allowed
    )
