"""The files a request's body names (a chat's `file` part, a Responses `input_file`),
given to the upstream by its own ids.

A file uploaded through the gateway has an id bound to the upstream that holds it
(hxgw.upstream.affinity); the upstream knows only its own. So a body that names one
goes to that upstream, with the upstream's id in its place: its candidates are the
models on that upstream, and a key names only the files it made (as it reaches only
those by their routes, hxgw.pipeline.owners). An id the gateway did not make goes on
as it came.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from hxgw.config import MASTER_KEY_NAME
from hxgw.errors import BadRequest, NotFound
from hxgw.pipeline.context import Next, RequestContext
from hxgw.pipeline.owners import no_owners_store
from hxgw.pipeline.transform import MAX_DEPTH, encode_body
from hxgw.upstream.affinity import MARK, Bound, unbind

_MARKED = MARK.encode()


def unbind_files(ctx: RequestContext, call_next: Next) -> Awaitable[None]:
    """After `route`. Reads ctx.raw_body, ctx.body, ctx.key and ctx.candidates; for a
    body that names a file the gateway made, writes ctx.body and ctx.raw_body (the
    upstream's ids) and ctx.candidates (those on the file's upstream)."""
    if _MARKED not in ctx.raw_body:
        return call_next(ctx)  # no id of the gateway's in it: as nearly every body
    assert ctx.body is not None
    named: dict[str, Bound] = {}
    body = _unbound(ctx.body, named)
    if not named:
        return call_next(ctx)
    return _checked_then_next(ctx, body, named, call_next)


async def _checked_then_next(
    ctx: RequestContext, body: dict[str, Any], named: dict[str, Bound], call_next: Next
) -> None:
    upstreams = {bound.target for bound in named.values()}
    if len(upstreams) > 1:
        raise BadRequest(
            "the files this request names are held by different upstreams "
            f"({', '.join(sorted(upstreams))}): name files of one upstream"
        )
    (upstream,) = upstreams
    await _owned(ctx, upstream, named)
    candidates = tuple(m for m in ctx.candidates if m.upstream == upstream)
    if not candidates:
        offered = ", ".join(m.name for m in ctx.candidates)
        raise BadRequest(
            f"the files this request names are held by upstream {upstream!r}, where none "
            f"of its models is ({offered}): name a model or group of that upstream"
        )
    if ctx.decision is not None and candidates != ctx.candidates:
        # Its X-HX-Route names what is tried. The others are not `skipped`: a request its
        # files leave one model is that model's alone, its errors passed on as they came.
        ctx.decision = ctx.decision._replace(candidates=candidates, route_header="")
    ctx.candidates = candidates
    ctx.body, ctx.raw_body = body, encode_body(body)
    await call_next(ctx)


async def _owned(ctx: RequestContext, upstream: str, named: dict[str, Bound]) -> None:
    """Raise unless the key made every file named (the master key reaches all)."""
    assert ctx.key is not None
    mine = ctx.key.name
    if mine == MASTER_KEY_NAME:
        return
    owners = ctx.state.runtime.owners
    if owners is None:
        raise no_owners_store()
    found = await owners.of(upstream, [bound.upstream_id for bound in named.values()])
    for client_id, bound in named.items():
        if found.get(bound.upstream_id) != mine:
            raise NotFound(f"No such file: {client_id!r}")


def _unbound(value: Any, named: dict[str, Bound], depth: int = 0) -> Any:
    """`value` with each id bound to an upstream (a file's) in its upstream's own place;
    `named` collects them. A body deeper than the gateway writes is refused here, before
    the walk meets Python's recursion limit (the parser reads 1024 levels)."""
    if depth > MAX_DEPTH:
        raise BadRequest(f"request body is nested too deeply: over {MAX_DEPTH} levels")
    if isinstance(value, str):
        bound = unbind(value) if MARK in value else None
        if bound is None or bound.kind != "upstream":
            return value
        named[value] = bound
        return bound.upstream_id
    if isinstance(value, dict):
        return {k: _unbound(v, named, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_unbound(v, named, depth + 1) for v in value]
    return value
