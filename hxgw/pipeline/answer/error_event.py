"""The `event: error` that ends a stream the upstream broke, in the route's API's shape:
OpenAI's SDKs raise an APIError for it instead of waiting for `[DONE]`, Anthropic's
(whose streams send the same event name) one of its error classes."""

from __future__ import annotations

from urllib.parse import parse_qs

from hxgw import jsonio
from hxgw.endpoints import RESPONSE, RESPONSES
from hxgw.errors import GatewayError
from hxgw.pipeline.context import RequestContext


async def write_error_event(ctx: RequestContext, exc: GatewayError, closer: bytes) -> None:
    """End an SSE stream with `event: error` carrying the error object of the route's
    API: OpenAI's SDKs raise an APIError for it instead of waiting for `[DONE]`, and
    Anthropic's, whose streams send the same event name, one of its error classes."""
    await ctx.exchange.write(closer + b"event: error\ndata: " + error_event(ctx, exc) + b"\n\n")


def error_event(ctx: RequestContext, exc: GatewayError) -> bytes:
    """The data of the `event: error` that ends a stream the upstream broke."""
    if ctx.endpoint.dialect == "anthropic":
        return exc.to_anthropic_json(ctx.request_id)
    if ctx.endpoint is RESPONSES:
        first = 0
    elif ctx.endpoint is RESPONSE:  # a stored response streamed again (`?stream=true`)
        first = _starting_after(ctx.exchange.query) + 1
    else:
        return exc.to_json()
    # Numbered after the events relayed. OpenAI documents `code`, `message` and `param`
    # on the event itself and sends them nested in `error` (openai-dotnet#881): both are
    # here, as typed clients read the first and the Python SDK raises on the second.
    error = exc.to_dict()["error"]
    return jsonio.dumps(
        {
            "type": "error",
            "sequence_number": first + ctx.events,
            "code": error["code"],
            "message": error["message"],
            "param": error["param"],
            "error": error,
        }
    )


def _starting_after(query: str) -> int:
    """The `starting_after` of a retrieve's query: the events resent begin after it."""
    given = parse_qs(query).get("starting_after", ["-1"])[0]
    # No stream has 10**18 events: more digits are no position (int() refuses 4300).
    return int(given) if given.isascii() and given.isdigit() and len(given) <= 18 else -1
