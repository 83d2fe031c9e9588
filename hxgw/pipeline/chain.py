"""The request pipeline, top to bottom, and how it is assembled.

Each step is `step(ctx, call_next)`, awaited; it fails by raising a typed
`GatewayError` and leaves the response stream to `relay`. The chains are
built once per config snapshot, so a reload can change them and each step can
be tested alone with a hand-made context.

A step with work on both sides of the rest of the chain, or that waits, is an
`async def` that awaits `call_next(ctx)`. A step with nothing to do once the
rest has run is a plain `def` that ends with `return call_next(ctx)`: awaiting
what it returns runs the rest, and the request carries one coroutine fewer
(each level costs about 2k instructions to make, and again each time the
request waits and wakes, since a wake-up passes down through every level).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import FunctionType

from hxgw.pipeline.access_log import log_access
from hxgw.pipeline.auth import authenticate
from hxgw.pipeline.context import RequestContext
from hxgw.pipeline.forward import forward
from hxgw.pipeline.measure import record_metrics
from hxgw.pipeline.models import list_models
from hxgw.pipeline.operator import answer_operator
from hxgw.pipeline.parse import parse_body
from hxgw.pipeline.refuse import refuse_unrouted
from hxgw.pipeline.relay import relay
from hxgw.pipeline.rendering import render_errors
from hxgw.pipeline.request_id import assign_request_id
from hxgw.pipeline.route import route
from hxgw.pipeline.transform import transform_request
from hxgw.types import Next, Step

PROXY_STEPS: tuple[Step, ...] = (
    assign_request_id,  # X-Request-ID in, or a new one
    log_access,  # one access line when the request ends, however it ends
    record_metrics,  # Prometheus counters and histograms, however it ends
    render_errors,  # GatewayError -> OpenAI error JSON
    authenticate,  # bearer key -> named client key
    parse_body,  # size limit, JSON object, model/stream fields
    route,  # group or pinned model -> ordered candidates
    transform_request,  # per-model body rewrites, encoded lazily
    forward,  # failover over candidates until one produces a first byte
    relay,  # copy body or SSE to the client as it arrives
)

MODELS_STEPS: tuple[Step, ...] = (
    assign_request_id,
    log_access,
    record_metrics,
    render_errors,
    authenticate,
    list_models,  # the upstream's models plus the gateway's groups
)

OPERATOR_STEPS: tuple[Step, ...] = (
    assign_request_id,
    log_access,
    render_errors,
    answer_operator,  # health, readiness, metrics, status, the API document
)

UNROUTED_STEPS: tuple[Step, ...] = (
    assign_request_id,
    log_access,
    render_errors,
    refuse_unrouted,  # 404, or 405 with the methods the path takes
)


async def _end(ctx: RequestContext) -> None:
    """What the last step's `call_next` does: nothing."""


def build_chain(steps: Sequence[Step]) -> Next:
    """Compose `steps` so that each one's `call_next` runs the rest of the chain."""
    chain: Next = _end
    for step in reversed(steps):
        chain = _with_next(step, chain)
    return chain


def _with_next(step: Step, call_next: Next) -> Next:
    """A copy of `step` whose `call_next` defaults to the rest of the chain.

    Why not functools.partial(step, call_next=...): a partial with a keyword copies
    it into a new dict on every call, and the call goes through the generic path; a
    copy of the function with a default is called like any other, about 0.3 µs less
    for each step of each request."""
    assert isinstance(step, FunctionType) and step.__code__.co_argcount == 2, step
    bound = FunctionType(
        step.__code__, step.__globals__, step.__name__, (call_next,), step.__closure__
    )
    bound.__qualname__, bound.__doc__ = step.__qualname__, step.__doc__
    return bound
