"""Refuse a request this gateway sent itself.

An upstream `url` that points at the gateway (its own port in `HX_LITELLM_UPSTREAM`, a
load balancer in front of it) would send each request round for ever, the readiness
probe's too, with no client asking. Every request the gateway sends upstream names it in
`Via` (RFC 9110, 7.6.3), and passes on the Via the client's request came with, so one
that comes back, however many proxies and gateways it went through, is refused at once:
508 Loop Detected.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable

from hxgw.errors import LoopDetected
from hxgw.pipeline.context import Next, RequestContext

HOP_ENV = "HX_GATEWAY_HOP"
"""The environment variable by which a supervisor gives its workers its Via entry."""


def new_hop() -> str:
    """A Via entry of this gateway's own: a pseudonym, as RFC 9110 allows."""
    return f"1.1 hxgw-{secrets.token_hex(6)}"


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
