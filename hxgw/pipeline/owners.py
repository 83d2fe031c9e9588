"""Each key reaches only its own files and batches (hxgw.keys.owners says why).

`keep_to_owner` runs on every route of files and batches, after the key's limits
and before the upstream is asked:
- an object the request names that the key does not own is not found, as an id no
  upstream holds would be: a key cannot tell another's objects from none;
- what an answer makes is the key's before the client hears of it: a new file or
  batch, and a batch's output and error files (its owner's) once the batch is read
  through the gateway. A key makes nothing while the owners' database is away. An
  ended batch an answer holds is billed to its owner (hxgw.pipeline.billing.batch_usage);
- a list shows only the key's own. The upstream's list (newest first) is read in
  pages of the largest size its API allows until the client's page is full, the list
  ends, or it reaches objects older than the key's first: at most MAX_PAGES pages
  once one of the key's is found (the client's next page goes on from it), and for
  at most LIST_WAIT seconds while none is (then a 504: an empty page would end the
  SDKs' paging);
- a deleted file is forgotten.
The master key is the operator's: it reaches every object, and what it makes is its own.
"""

from __future__ import annotations

import itertools
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

import structlog

from hxgw import jsonio
from hxgw.config import MASTER_KEY_NAME
from hxgw.endpoints import FILE_DELETE
from hxgw.errors import (
    NotFound,
    Unavailable,
    UpstreamAnswer,
    UpstreamError,
    UpstreamTimeout,
)
from hxgw.keys.owners import Owners, OwnersUnavailable, keepable
from hxgw.pipeline.billing.background import CLOCK_SLACK, unix_time
from hxgw.pipeline.billing.batch_usage import Owned, bill_ended
from hxgw.pipeline.context import Next, RequestContext
from hxgw.pipeline.list_query import Asked, page_asked
from hxgw.pipeline.rebind import HeldIds
from hxgw.upstream.affinity import bind, unbind

MAX_PAGES = 20
"""The upstream's pages read for one page of a key's own once one is found."""
LIST_WAIT = 20.0
"""Seconds spent reading the upstream's list for the first of a key's objects, and at
most half the request's total timeout: the gateway's 504 then says why, before a page's
read runs out of time."""

log = structlog.get_logger("hxgw.pipeline.owners")


async def keep_to_owner(ctx: RequestContext, call_next: Next) -> None:
    """Reads ctx.key, ctx.named, ctx.upstream_path and the answer (ctx.rebind's
    document); rewrites a list's answer, and ctx.upstream_path for its pages.

    A list of a key's own runs the rest of the chain once per upstream page: `relay`
    answers a document it rebinds whole and unsent (hxgw.pipeline.rebind), so each
    page is read before the client's is rewritten from them."""
    assert ctx.key is not None
    owners, mine = ctx.state.runtime.owners, ctx.key.name
    listing = ctx.endpoint.listing
    # Read for every key: the master key's list goes upstream as asked, and a query no
    # API takes had met a proxy's 500.
    asked = page_asked(ctx.exchange.query, listing) if listing is not None else None
    if owners is None:
        if mine == MASTER_KEY_NAME:
            return await call_next(ctx)
        raise no_owners_store()
    if mine != MASTER_KEY_NAME:
        await _check_named(ctx, owners, mine)
        if ctx.endpoint.makes:  # made upstream, it would be lost to the key
            await owners.check()
    if asked is not None and mine != MASTER_KEY_NAME:
        document = await _own_pages(ctx, asked, owners, mine, call_next)
    else:
        await call_next(ctx)
        document = _document(ctx)
    try:
        owned = await _record(ctx, owners, mine, document)
    except OwnersUnavailable:
        if document is not None and (ctx.endpoint is FILE_DELETE or mine == MASTER_KEY_NAME):
            # Done upstream, and nobody loses it (the master key reaches every object).
            log.warning(
                "done upstream, but the owners' database could not be told",
                object=document.get("id"),
                key=mine,
            )
            return
        if ctx.endpoint.makes and document is not None:
            log.warning(
                "made upstream, but its owner could not be recorded: only the master key "
                "reaches it",
                object=document.get("id"),
                key=mine,
            )
        raise
    bill_ended(ctx, owned)


def no_owners_store() -> Unavailable:
    """The 503 of a key other than the master key where the owners' store is missing."""
    return Unavailable(
        "files and batches are kept to the key that made them, and this gateway has no "
        "store to keep that in (its state directory cannot be written): ask its operator"
    )


async def _check_named(ctx: RequestContext, owners: Owners, mine: str) -> None:
    for bound, param in ctx.named:
        found = await owners.of(bound.target, [bound.upstream_id])
        if found.get(bound.upstream_id) != mine:
            client_id = bind("upstream", bound.target, bound.upstream_id)
            raise NotFound(f"No such object: {client_id!r}", param=param)


async def _own_pages(
    ctx: RequestContext, client_asked: Asked, owners: Owners, mine: str, call_next: Next
) -> dict[str, Any] | None:
    """The client's page of the list, of the key's own objects only (None: the
    upstream's error is the answer)."""
    given, wanted, newest_first, most = client_asked
    for param, value in given:
        if param == "after" and unbind(value) is None:  # else the upstream says if it exists
            raise NotFound(f"No such object: {value!r}", param="after")
    path, _, query = (ctx.upstream_path or ctx.endpoint.upstream_path).partition("?")
    asked = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "limit"]
    asked.append(("limit", str(most)))
    upstream = ctx.candidates[0].upstream  # the one that holds the list
    first_made = await owners.first_made(upstream, mine)
    wait = min(LIST_WAIT, ctx.state.config.timeouts.total / 2)
    deadline = ctx.started + wait
    kept: list[dict[str, Any]] = []
    seen: set[str] = set()  # the upstream ids of the objects its pages held so far
    page: dict[str, Any] = {}
    for read in itertools.count(1):
        ctx.upstream_path = f"{path}?{urlencode(asked)}"
        try:
            await call_next(ctx)
        except UpstreamAnswer:
            if read == 1:
                raise  # the upstream's answer to what the client asked, as it came
            ctx.status = 502
        if ctx.status != 200 and read == 1:
            return None
        if ctx.status != 200:  # its answer may name the cursor, another key's object
            raise UpstreamError(f"the upstream failed on page {read} of its list")
        answer = _document(ctx)
        if answer is None or answer.get("object") != "list":
            raise UpstreamError("the upstream's list is not one the gateway can sort by key")
        page = answer
        items: list[dict[str, Any]] = page["data"]
        bounds = [unbind(str(item.get("id"))) for item in items]
        # Each object once: an upstream that pages on from no `after` (or back to one
        # it paged past) repeats what it showed, and a page with nothing new ends it.
        fresh = []
        for item, bound in zip(items, bounds, strict=True):
            if bound is not None and bound.upstream_id not in seen:
                seen.add(bound.upstream_id)
                fresh.append((item, bound))
        found = await owners.of(upstream, [b.upstream_id for _, b in fresh])
        kept += [i for i, b in fresh if found.get(b.upstream_id) == mine]
        last = bounds[-1] if bounds else None
        ended = not page.get("has_more") or last is None or first_made is None or not fresh
        ended = ended or (newest_first and _older(items[-1], first_made))
        late = time.perf_counter() >= deadline
        if ended or len(kept) >= wanted or (kept and (read >= MAX_PAGES or late)):
            break
        if late:
            raise UpstreamTimeout(
                f"the upstream's list holds more of other keys' objects than {read} pages "
                f"read in {wait:g} s, and none of this key's yet: retrieve them by id"
            )
        assert last is not None
        asked = [(k, v) for k, v in asked if k != "after"] + [("after", last.upstream_id)]
    shown = kept[:wanted]
    page |= {
        "data": shown,
        "first_id": shown[0]["id"] if shown else None,
        "last_id": shown[-1]["id"] if shown else None,
        "has_more": len(kept) > wanted or not ended,
    }
    body = jsonio.dumps_deep(page)
    ctx.exchange.rewrite(body)
    ctx.bytes_out = len(body)
    return page


def _older(item: dict[str, Any], first_made: float | None) -> bool:
    """Whether the upstream made `item` before the key's first object, clocks apart. A
    created_at that is no time of the upstream's making (0, below zero; milliseconds are
    read as such) says nothing: taken as one, a 0 ended the key's list before its own."""
    made = unix_time(item.get("created_at"))
    if first_made is None or made is None:
        return False
    return made < first_made - CLOCK_SLACK


async def _record(
    ctx: RequestContext, owners: Owners, mine: str, document: dict[str, Any] | None
) -> list[Owned]:
    """Make what the answer (`document`, as the client gets it) made the key's, and a
    batch's files its owner's; the batches it holds whose owner is known."""
    if document is None or ctx.status != 200:
        return []
    if ctx.endpoint is FILE_DELETE:
        if document.get("deleted") is not True:
            return []
        bound, _ = ctx.named[0]
        await owners.forget(bound.target, bound.upstream_id)
        return []
    owned: list[Owned] = []
    new: dict[str, str] = {}  # the upstream's id -> its owner
    made = unbind(str(document.get("id"))) if ctx.endpoint.makes else None
    if made is not None:
        if not keepable(made.upstream_id) and mine != MASTER_KEY_NAME:
            log.warning(
                "made upstream with an id no store keeps: only the master key reaches it",
                object=document.get("id"),
                key=mine,
            )
            raise UpstreamError(
                "the upstream named what it made with an id the gateway cannot keep (a NUL "
                "in it, or over 1 KiB): only the gateway's operator reaches it"
            )
        new[made.upstream_id] = mine
    objects = document["data"] if document.get("object") == "list" else [document]
    batches = [(o, unbind(str(o.get("id")))) for o in objects if o.get("object") == "batch"]
    bound_batches = [(o, b) for o, b in batches if b is not None]
    upstream = made.target if made else bound_batches[0][1].target if bound_batches else ""
    if bound_batches:
        ids = [b.upstream_id for _, b in bound_batches]
        if mine == MASTER_KEY_NAME:  # its answers hold any key's batches
            owner_of = await owners.of(upstream, ids) | new
        else:  # only its own
            owner_of = dict.fromkeys(ids, mine)
        for batch, bound in bound_batches:
            owner = owner_of.get(bound.upstream_id)
            if owner is not None:
                owned.append(Owned(batch, owner, bound.target))
            for field in ("output_file_id", "error_file_id"):
                made_file = unbind(str(batch.get(field)))
                if owner is not None and made_file is not None:
                    new.setdefault(made_file.upstream_id, owner)
    if new:
        known = await owners.of(upstream, list(new))
        await owners.record(upstream, {i: k for i, k in new.items() if i not in known})
    return owned


def _document(ctx: RequestContext) -> dict[str, Any] | None:
    rebind = ctx.rebind
    return rebind.document if isinstance(rebind, HeldIds) else None
