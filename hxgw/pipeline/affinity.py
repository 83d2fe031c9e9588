"""Send every call on upstream state to where that state lives.

A response exists only on the upstream model that made it. A request that
continues one (`previous_response_id`) or acts on one (`/v1/responses/{id}`)
goes to that model, whatever the router would pick now; a file or batch id
goes to the upstream that holds it. The id says which (hxgw.upstream.affinity).
When that model or upstream is gone from the config, the call is refused with
a 404 that says so: re-routing it elsewhere would silently lose the state.
"""

from __future__ import annotations

from collections.abc import Awaitable
from urllib.parse import quote

from hxgw.config import Model
from hxgw.endpoints import RESPONSES, id_in_path
from hxgw.errors import BadRequest, Forbidden, NotFound
from hxgw.pipeline.context import Next, RequestContext
from hxgw.pipeline.held import bound_upstream
from hxgw.pipeline.rebind import HeldIds, Rebind, ResponseIds
from hxgw.pipeline.shapes import check_query
from hxgw.pipeline.transform import NO_BODY, encode_body
from hxgw.routing.decision import Decision
from hxgw.routing.routes import may_use_model
from hxgw.upstream.affinity import unbind

PREVIOUS = "previous_response_id"


def follow_previous(ctx: RequestContext, call_next: Next) -> Awaitable[None]:
    """`POST /v1/responses`, after `route`. Reads ctx.body and ctx.key; writes
    ctx.rebind and, for a follow-up, ctx.candidates, ctx.pinned, ctx.body and
    ctx.raw_body (with the upstream's id of the previous response)."""
    assert ctx.body is not None
    previous = ctx.body.get(PREVIOUS)
    known: dict[str, str] = {}
    if previous is not None:
        if not isinstance(previous, str):
            raise BadRequest(f"'{PREVIOUS}' must be a string", param=PREVIOUS)
        model, upstream_id = _bound_model(ctx, previous, PREVIOUS)
        # Pinned, and its X-HX-Route says so (`hxgw route` shows the same).
        ctx.decision = Decision("pinned", (model,))
        ctx.candidates, ctx.pinned = ctx.decision.candidates, True
        ctx.body = body = {**ctx.body, PREVIOUS: upstream_id}
        ctx.raw_body = encode_body(body)
        known[upstream_id] = previous
    ctx.rebind = ResponseIds(known, learn=True)
    return call_next(ctx)


def bind_to_origin(ctx: RequestContext, call_next: Next) -> Awaitable[None]:
    """A route on one response, file or batch. Reads the path's id, the query and
    ctx.key; writes ctx.candidates, ctx.pinned, ctx.upstream_path, ctx.upstream_bodies,
    ctx.rebind and, for a file or batch, ctx.named (`bound_upstream`)."""
    endpoint = ctx.endpoint
    client_id = id_in_path(endpoint, ctx.exchange.path)
    assert client_id is not None  # the endpoint was chosen by this path
    rebind: Rebind | None
    if endpoint.bound == "model":
        candidate, upstream_id = _bound_model(ctx, client_id, None)
        # Its answer may be the response again, naming the one before it: learnt too.
        rebind = ResponseIds({upstream_id: client_id}, learn=True)
    else:
        candidate, upstream_id = bound_upstream(ctx, client_id, None)
        rebind = None if endpoint.raw_answer else HeldIds({upstream_id: client_id})
    ctx.candidates, ctx.pinned, ctx.rebind = (candidate,), True, rebind
    # Quoted whole: a made-up id must not reach another upstream path ("../key/new").
    path = endpoint.upstream_path.replace("{id}", quote(upstream_id, safe=""))
    query = ctx.exchange.query
    check_query(query)
    ctx.upstream_path = f"{path}?{query}" if query else path
    ctx.upstream_bodies = NO_BODY
    return call_next(ctx)


def _bound_model(ctx: RequestContext, client_id: str, param: str | None) -> tuple[Model, str]:
    """The model a response id is bound to, and the upstream's id for it."""
    assert ctx.key is not None
    bound = unbind(client_id)
    if bound is None or bound.kind != "model":
        raise NotFound(
            f"Response with id {client_id!r} not found: this gateway did not make it", param=param
        )
    config = ctx.state.config
    model = config.models.get(bound.target)
    if model is None:
        raise NotFound(
            f"response {client_id!r} was made by model {bound.target!r}, which this gateway "
            "no longer serves: its state cannot be reached",
            param=param,
        )
    if not may_use_model(config, ctx.key, model):
        raise Forbidden(f"key {ctx.key.name!r} may not use model {model.name!r}", param=param)
    # Ids are unsigned: a made-up one may name an embedding model, which no response
    # came from (or the model's mode changed since it made one).
    if RESPONSES.mode is not None and not model.serves(RESPONSES.mode):
        raise NotFound(
            f"response {client_id!r} names model {model.name!r}, which serves "
            f"{model.mode} requests, not responses",
            param=param,
        )
    return model, bound.upstream_id
