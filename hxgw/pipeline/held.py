"""Files and batches: objects an upstream holds, which name no model.

They go to one upstream, not to a model of a group: the one named by the
`X-HX-Model-Group` header's group (its first model's upstream), else the
`default` upstream (else the default group's). A key limited to some groups
reaches only the upstreams of their models. A batch goes where its input
file is, and a page of a list after an id goes where that id is: ids are bound
to their upstream (hxgw.upstream.affinity). There is no failover: another
upstream does not hold the same objects.
"""

from __future__ import annotations

from collections.abc import Awaitable
from urllib.parse import parse_qsl, urlencode

from hxgw.config import DEFAULT_UPSTREAM, Model
from hxgw.endpoints import BATCHES
from hxgw.errors import BadRequest, BatchNotAllowed, Forbidden, NotFound
from hxgw.pipeline.billing.usage import counting_limits
from hxgw.pipeline.context import Next, RequestContext
from hxgw.pipeline.rebind import HeldIds
from hxgw.pipeline.shapes import check_query
from hxgw.pipeline.transform import FixedBody, encode_body
from hxgw.routing.routes import GROUP_HEADER, may_use_upstream
from hxgw.upstream.affinity import unbind

INPUT_FILE = "input_file_id"


def choose_upstream(ctx: RequestContext, call_next: Next) -> Awaitable[None]:
    """Lists, and creating a batch. Reads the header, ctx.key, ctx.body (a batch's
    `input_file_id`) and the query's `after`; writes ctx.candidates, ctx.pinned,
    ctx.upstream_path, ctx.upstream_bodies, ctx.rebind, ctx.named (the ids it was given,
    through `bound_upstream`) and, for a group's upstream, ctx.group."""
    upstream = None
    raw = ctx.raw_body
    named: dict[str, str] = {}
    if ctx.body is not None and ctx.body.get(INPUT_FILE) is not None:
        given = ctx.body[INPUT_FILE]
        if not isinstance(given, str):
            # Not an id at all: the client's mistake, not an object this gateway lacks.
            raise BadRequest(f"'{INPUT_FILE}' must be a string", param=INPUT_FILE)
        candidate, upstream_id = bound_upstream(ctx, given, INPUT_FILE)
        upstream, named[upstream_id] = candidate.upstream, given
        raw = encode_body({**ctx.body, INPUT_FILE: upstream_id})
    query = ctx.exchange.query
    check_query(query)
    pairs = parse_qsl(query, keep_blank_values=True)
    for at, (name, value) in enumerate(pairs):
        if name == "after" and unbind(value) is not None:
            # A page after an id: where that id is, with the upstream's own id.
            candidate, upstream_id = bound_upstream(ctx, value, "after")
            upstream = upstream or candidate.upstream
            pairs[at], named[upstream_id] = (name, upstream_id), value
            query = urlencode(pairs)
    ctx.candidates = (stand_in(upstream or _chosen_upstream(ctx)),)
    if ctx.endpoint is BATCHES:
        _may_batch(ctx)
    ctx.pinned = True
    path = ctx.endpoint.upstream_path
    ctx.upstream_path = f"{path}?{query}" if query else path
    if ctx.upload is None:  # a file upload streams its own body (file_upload)
        ctx.upstream_bodies = FixedBody(raw)
    ctx.rebind = HeldIds(named)
    return call_next(ctx)


def _may_batch(ctx: RequestContext) -> None:
    """The upstream runs a batch's lines later, each naming its own model: the gateway
    can neither keep them to a key's groups nor count what they use against its budget
    or tokens per minute. A key with any of those may not make one."""
    key = ctx.key
    assert key is not None
    held = ["groups"] if key.groups is not None else []
    if key.groups is None and key.reach is not None:
        held.append("a team with groups")
    held += counting_limits(key.limits)
    held += [f"{limit} per end user" for limit in counting_limits(key.per_user)]
    team = key.team.limits if key.team is not None else None
    held += [f"a team with {limit}" for limit in counting_limits(team)]
    if held:
        raise BatchNotAllowed(
            f"this key has {' and '.join(held)}, which the gateway cannot hold a batch to "
            "(the upstream runs its requests later, each naming its own model): make "
            "batches with a key without them"
        )


def _chosen_upstream(ctx: RequestContext) -> str:
    """The upstream of the header's group, or the default; sets ctx.group to the group
    when one was chosen."""
    assert ctx.key is not None
    config = ctx.state.config
    group = ctx.exchange.sole_header(GROUP_HEADER)
    if (
        group is None
        and DEFAULT_UPSTREAM in config.upstreams
        and may_use_upstream(config, ctx.key, DEFAULT_UPSTREAM)
    ):
        return DEFAULT_UPSTREAM
    if group is None:
        key, default = ctx.key, config.routing.default_group
        # A key limited to other groups: the first of them the config lists.
        allowed = (g for g in config.routing.groups if key.may_use(g))
        group = default if key.may_use(default) else next(allowed, default)
    # The group's models, as a request naming it would get them (the key's groups checked).
    route = ctx.state.routes.resolve(group, None, ctx.key, None)
    # Only a group the config has: the header's text is a metrics label and a ledger value.
    ctx.group = group
    return route.candidates[0].upstream


def bound_upstream(ctx: RequestContext, client_id: str, param: str | None) -> tuple[Model, str]:
    """The stand-in of the upstream a file or batch id is bound to, and the upstream's id;
    the id joins ctx.named, whose owner `keep_to_owner` checks."""
    bound = unbind(client_id)
    if bound is None or bound.kind != "upstream":
        raise NotFound(f"No such object: {client_id!r} was not made by this gateway", param=param)
    if bound.target not in ctx.state.config.upstreams:
        raise NotFound(
            f"{client_id!r} is held by upstream {bound.target!r}, which this gateway no longer has",
            param=param,
        )
    assert ctx.key is not None
    if not may_use_upstream(ctx.state.config, ctx.key, bound.target):
        raise Forbidden(
            f"key {ctx.key.name!r} may not use upstream {bound.target!r}, which holds "
            f"{client_id!r}: none of its groups has a model there",
            param=param,
        )
    ctx.named += ((bound, param),)
    return stand_in(bound.target), bound.upstream_id


def stand_in(upstream: str) -> Model:
    """The candidate for a request that names no model: the upstream itself, as logs,
    metrics and the ledger name it."""
    return Model(
        name=f"upstream:{upstream}",
        tier_score=0.0,
        specializations=(),
        upstream_model="",
        upstream=upstream,
    )
