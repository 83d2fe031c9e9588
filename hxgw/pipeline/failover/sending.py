"""What goes upstream for one candidate: the request's own header lines, the pool's call,
and the name of a transport failure (a connect error, a timeout, a reset) for the logs,
metrics and the gateway's error."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from hxgw.config import Model
from hxgw.errors import HeaderTooLarge
from hxgw.pipeline.context import RequestContext
from hxgw.pipeline.loops import passed_hops
from hxgw.upstream import (
    Gate,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamResponse,
    header_line,
)

FORWARDED_REQUEST_HEADERS = ("traceparent", "anthropic-version")
FORWARDED_LIST_HEADERS = ("tracestate", "anthropic-beta")
"""Lists a client may split over several lines (RFC 9110, 5.3): sent on as one."""
FORWARDED_MAX = 8 * 1024
"""The most bytes of the request's own header lines that go upstream (the client's trace
and Anthropic headers, its id, the hops): an upstream's server reads a line of about 8 KiB
at most (aiohttp's 8,190 bytes) and refused a longer one with a 400 that quoted it, held
against the model; no real client sends a tenth of it."""


def send(
    ctx: RequestContext, model: Model, headers: list[bytes], body: bytes, gate: Gate
) -> Coroutine[Any, Any, UpstreamResponse]:
    """The request to `model`, as the pool's coroutine: it returns once the head is in.
    The connection gives the gate's slot back when it is idle again or closed."""
    state = ctx.state
    return state.client.request(
        ctx.endpoint.method.encode(),
        state.origins[model.upstream],
        (ctx.upstream_path or ctx.endpoint.upstream_path).encode(),
        state.upstream_head[model.upstream],
        headers,
        body,
        connect_timeout=state.config.timeouts.connect,
        slot=gate,
    )


def request_headers(ctx: RequestContext) -> list[bytes]:
    """The request's own header lines; the fixed ones come framed from the snapshot."""
    lines = [header_line("X-Request-ID", ctx.request_id)]
    exchange = ctx.exchange
    for name in FORWARDED_REQUEST_HEADERS:
        value = exchange.header(name)
        if value is not None:
            lines.append(header_line(name, value))
    for name in FORWARDED_LIST_HEADERS:
        value = exchange.joined_header(name)
        if value is not None:
            lines.append(header_line(name, value))
    via = passed_hops(ctx)  # the gateways before this one
    if via is not None:
        lines.append(header_line("Via", via))
    if sum(map(len, lines)) > FORWARDED_MAX:
        raise HeaderTooLarge(
            "the trace and Anthropic headers this request sends on "
            f"({', '.join((*FORWARDED_REQUEST_HEADERS, *FORWARDED_LIST_HEADERS))}) "
            f"are over {FORWARDED_MAX // 1024} KiB together, more than an upstream reads"
        )
    return lines


def transport_outcome(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, UpstreamConnectError):
        return "connect_error"
    if isinstance(exc, UpstreamProtocolError):
        return "protocol_error"
    return "reset"
