"""Refuse a request this gateway sent itself.

An upstream `url` that points at the gateway (its own port in `HX_LITELLM_UPSTREAM`, a
load balancer in front of it) would send each request round for ever, the readiness
probe's too, with no client asking. Every request the gateway sends upstream names it in
`Via` (RFC 9110, 7.6.3), and passes on the gateways' entries of the Via the client's
request came with, so one that comes back, however many gateways it went through, is
refused at once: 508 Loop Detected. The client's other entries stay behind: its Via may
be as long as the gateway takes a header, more than an upstream takes with the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable

from hxgw.errors import LoopDetected
from hxgw.pipeline.context import Next, RequestContext


def refuse_loops(ctx: RequestContext, call_next: Next) -> Awaitable[None]:
    """Reads the Via header."""
    hop, via = ctx.state.runtime.hop, ctx.exchange.joined_header("Via")
    if hop and via is not None and hop in via:
        raise LoopDetected(
            "this request came back to the gateway that sent it upstream: an upstream's "
            "url points at the gateway itself (check gateway.yaml's upstreams and "
            "HX_LITELLM_UPSTREAM)"
        )
    return call_next(ctx)


def passed_hops(ctx: RequestContext) -> str | None:
    """The gateways' entries of the client's Via, to be passed on (the last few, short
    ones only: a client may write any)."""
    via = ctx.exchange.joined_header("Via")
    if via is None or "hxgw-" not in via:
        return None
    hops = [hop.strip() for hop in via.split(",") if "hxgw-" in hop and len(hop) <= 64]
    return ", ".join(hops[-16:]) or None
