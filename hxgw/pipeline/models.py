"""List the models and groups a key may use, as a request names them, or describe one."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs

import structlog

from hxgw import jsonio
from hxgw.endpoints import MODELS
from hxgw.errors import BadRequest, ModelNotFound, UpstreamError, did_you_mean
from hxgw.pipeline.billing.background import unix_time
from hxgw.pipeline.context import Next, RequestContext
from hxgw.routing.routes import may_use_model
from hxgw.upstream import GateFull, TransportError, header_line

log = structlog.get_logger("hxgw.models")

# A list longer than this is not a model list; reading stops there.
MODEL_LIST_LIMIT = 8 * 1024 * 1024


async def list_models(ctx: RequestContext, call_next: Next) -> None:
    """Reads ctx.key; answers with `{"object": "list", "data": [...]}`, or in Anthropic's
    shape to Anthropic's SDKs (which send `anthropic-version`)."""
    entries = await _entries(ctx)
    if not ctx.speaks_anthropic():
        _answer(ctx, {"object": "list", "data": entries}, anthropic=False)
    else:
        page = _anthropic_page([_anthropic(e) for e in entries], ctx.exchange.query)
        _answer(ctx, page, anthropic=True)
    await call_next(ctx)


def _anthropic_page(entries: list[dict[str, Any]], query: str) -> dict[str, Any]:
    """One page of the list as Anthropic's Models API pages it: `limit` (20 unless said,
    1 to 1000) entries after `after_id` or before `before_id`. The SDK pages on from
    `last_id` (or `first_id` going back) while `has_more`: a page that ignored them would
    answer its client the same entries again, or stop it short of the rest."""
    asked = {name: values[0] for name, values in parse_qs(query).items()}
    given = asked.get("limit", "20")
    if not (given.isascii() and given.isdigit() and len(given) <= 4 and 1 <= int(given) <= 1000):
        raise BadRequest(
            f"limit: must be an integer from 1 to 1000, got {given[:50]!r}", param="limit"
        )
    limit, ids = int(given), [entry["id"] for entry in entries]
    for cursor in ("after_id", "before_id"):
        if cursor in asked and asked[cursor] not in ids:
            raise BadRequest(f"{cursor}: no model has the id {asked[cursor][:200]!r}", param=cursor)
    if "before_id" in asked:
        end = ids.index(asked["before_id"])
        start, more = max(end - limit, 0), end > limit
    else:
        start = ids.index(asked["after_id"]) + 1 if "after_id" in asked else 0
        end = start + limit
        more = end < len(entries)
    page = entries[start:end]
    first, last = (page[0]["id"], page[-1]["id"]) if page else (None, None)
    return {"data": page, "has_more": more, "first_id": first, "last_id": last}


async def describe_model(ctx: RequestContext, call_next: Next) -> None:
    """`GET /v1/models/{model}`: reads ctx.key and the path; answers with the one entry of
    the list that has that id (a group, or a model of the registry), or 404
    in OpenAI's shape, as `client.models.retrieve` expects."""
    wanted = ctx.exchange.path.split("/models/", 1)[1]  # decoded by aiohttp
    entries = await _entries(ctx)
    found = next((e for e in entries if e.get("id") == wanted), None)
    if found is None:
        # OpenAI's words first (clients match on them), then what a chat's 404 says too.
        ids = [e["id"] for e in entries if isinstance(e.get("id"), str)]
        raise ModelNotFound(
            f"The model `{wanted[:200]}` does not exist{did_you_mean(wanted, ids)}: "
            "GET /v1/models lists the groups and models this key may use",
            param="model",
        )
    anthropic = ctx.speaks_anthropic()
    _answer(ctx, _anthropic(found) if anthropic else found, anthropic=anthropic)
    await call_next(ctx)


def _anthropic(entry: dict[str, Any]) -> dict[str, Any]:
    """A list entry as Anthropic's Models API has it (the SDK's ModelInfo)."""
    created = entry.get("created")
    seconds = created if isinstance(created, int) and 0 <= created < 253_402_300_800 else 0
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))  # as /status.json does
    return {"type": "model", "id": entry["id"], "display_name": entry["id"], "created_at": when}


def _answer(ctx: RequestContext, document: Any, *, anthropic: bool) -> None:
    body = jsonio.dumps(document)
    ctx.status, ctx.bytes_out = 200, len(body)
    headers = {"Content-Type": "application/json", "X-Request-ID": ctx.request_id}
    if anthropic:
        headers["request-id"] = ctx.request_id  # what Anthropic's SDK reads as the request id
    ctx.exchange.respond(200, headers | ctx.limit_headers if ctx.limit_headers else headers, body)


async def _entries(ctx: RequestContext) -> list[dict[str, Any]]:
    """The models and groups the key may use, by the names a request takes.

    A model of the registry is listed under its own name, with what its upstream lists
    for its `upstream_model` (its `created`, `owned_by`); an upstream's model that no
    registry entry names is left out, as no request could reach it. A group is dated as
    its newest model, or else when the config that made it was loaded: a client that
    sorts models by `created` must not find every group in 1970."""
    assert ctx.key is not None
    state = ctx.state
    config = state.config
    listed: dict[tuple[str, str], dict[str, Any]] = {}
    errors: list[str] = []
    for upstream in config.upstreams.values():
        try:
            data = await _fetch(ctx, upstream.name)
        except (*TransportError, NoList, GateFull) as exc:
            errors.append(f"{upstream.name}: {exc or type(exc).__name__}")
            log.warning("upstream models list failed", upstream=upstream.name, error=str(exc))
            continue
        for entry in data:
            if isinstance(entry, dict):
                listed.setdefault((upstream.name, str(entry.get("id"))), entry)
    if errors and not listed:
        raise UpstreamError(f"no upstream listed its models ({'; '.join(errors)})")
    entries: list[dict[str, Any]] = []
    created: dict[str, int] = {}
    for model in config.models.values():
        theirs = _theirs(listed.get((model.upstream, model.upstream_model), {}))
        # Seconds, as OpenAI dates a model; a group's date is the gateway's own word.
        if (when := unix_time(theirs.get("created"))) is not None:
            created[model.name] = int(when)
        if may_use_model(config, ctx.key, model):
            entries.append(
                {"object": "model", "created": 0, "owned_by": model.upstream}
                | theirs
                | {"id": model.name, "hx_upstream_model": model.upstream_model}
            )
    routing = config.routing
    for group in routing.groups.values():
        if ctx.key.may_use(group.name):
            modes = {config.models[m].mode for m in group.models}
            dates = [created[m] for m in group.models if created.get(m)]
            entries.append(
                {
                    "id": group.name,
                    "object": "model",
                    "created": max(dates) if dates else int(state.loaded_at),
                    "owned_by": "hxgw",
                    "hx_group": True,
                    "hx_models": list(group.models),
                    # The mode its models share (None when mixed or undeclared).
                    "hx_mode": modes.pop() if len(modes) == 1 else None,
                    "hx_default": group.name == routing.default_group,
                }
            )
    return entries


def _theirs(entry: dict[str, Any]) -> dict[str, Any]:
    """An upstream's entry without the gateway's own fields (`hx_...`): an upstream that
    is a gateway of this kind lists its groups with them, and a model sent to one had
    been listed here as a group, even the default one."""
    if not any(name.startswith("hx_") for name in entry):
        return entry
    return {name: value for name, value in entry.items() if not name.startswith("hx_")}


class NoList(Exception):
    """An upstream answered, but not with a list of models."""


async def _fetch(ctx: RequestContext, upstream_name: str) -> list[Any]:
    state = ctx.state
    gate = state.runtime.gates.including_removed(upstream_name)
    async with asyncio.timeout(state.first_byte_budget(ctx.started)):
        await gate.enter()  # a model list is a request too: it takes a turn at the cap
        status, payload = await state.client.fetch(
            state.origins[upstream_name],
            MODELS.upstream_path.encode(),
            state.upstream_head[upstream_name],
            [header_line("X-Request-ID", ctx.request_id)],
            limit=MODEL_LIST_LIMIT,
            connect_timeout=state.config.timeouts.connect,
            slot=gate,
        )
        if status != 200:
            raise NoList(f"HTTP {status}: {payload[:200].decode('utf-8', 'replace')}")
    try:
        parsed = jsonio.loads(payload)
    except jsonio.DecodeError as exc:
        raise NoList(f"the upstream's model list is not JSON: {exc}") from None
    data = parsed.get("data") if isinstance(parsed, dict) else None
    if not isinstance(data, list):
        raise NoList("the upstream's model list has no 'data' array")
    try:
        jsonio.dumps({"data": data})  # as deep as the gateway's list nests the entries
    except jsonio.EncodeError:
        # An entry nested past what orjson writes (254 levels, where it reads 1024) had
        # made every /v1/models a 500: each keeps its plain members (`created`, ...).
        return [_plain(entry) for entry in data]
    return data


def _plain(entry: Any) -> Any:
    """A list entry without the members that nest."""
    if not isinstance(entry, dict):
        return entry
    return {name: value for name, value in entry.items() if not isinstance(value, dict | list)}
