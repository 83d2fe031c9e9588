"""Prepare the body each candidate model receives, encoding it only when it is needed."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from hxgw import jsonio
from hxgw.config import Model
from hxgw.config.transforms import apply_transforms
from hxgw.errors import BadRequest
from hxgw.pipeline.context import Next, RequestContext


class UpstreamBodies:
    """The upstream body per candidate, encoded on first use.

    Most requests are served by their first candidate, and a 1 MB embeddings
    body should not be re-encoded for models that are never tried. When the
    client already named the upstream id and no rewrite applies, its bytes go
    out untouched.
    """

    __slots__ = ("_body", "_cache", "_raw", "_raw_checked")

    def __init__(self, body: dict[str, Any], raw: bytes | None) -> None:
        """`raw`: the client's bytes of `body`; None when the gateway changed it."""
        self._body, self._raw = body, raw
        self._cache: dict[tuple[str, int], bytes] = {}
        self._raw_checked = False

    def for_model(self, model: Model) -> bytes:
        raw = self._raw
        if (
            raw is not None
            and not model.transforms
            and self._body.get("model") == model.upstream_model
        ):
            if not self._raw_checked:
                _writable(raw, self._body)
                self._raw_checked = True
            return raw
        cache_key = (model.upstream_model, id(model.transforms))
        encoded = self._cache.get(cache_key)
        if encoded is None:
            body = dict(self._body)
            body["model"] = model.upstream_model
            if model.transforms:
                body = apply_transforms(body, model.transforms)
            encoded = self._cache[cache_key] = encode_body(body)
        return encoded


MAX_DEPTH = 254
"""The deepest body orjson writes: one passed on as it came is held to it too."""


def _writable(raw: bytes, body: dict[str, Any]) -> None:
    """Refuse a body passed on as it came that the gateway could not have written: one
    rewritten for its model is refused (`encode_body`), and one passed on met parsers
    upstream that fail on it with a 500, held against the model. Only a body with that
    many brackets (in its strings too) can nest that deep."""
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _deeper_than(body, MAX_DEPTH):
        raise BadRequest(f"request body is nested too deeply: over {MAX_DEPTH} levels")


def _deeper_than(body: dict[str, Any], most: int) -> bool:
    """Whether `body` nests objects and arrays more than `most` levels deep."""
    level: list[Any] = [body]
    for _ in range(most):
        level = [
            child
            for value in level
            for child in (value.values() if isinstance(value, dict) else value)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


def encode_body(body: dict[str, Any]) -> bytes:
    """A request body the gateway changed, as JSON again."""
    try:
        return jsonio.dumps(body)
    except jsonio.EncodeError:
        # orjson reads 1024 levels of nesting but writes only 254.
        raise BadRequest("request body is nested too deeply") from None


class FixedBody:
    """The same upstream body for every candidate: none (a GET, a DELETE, a cancel), or
    one that names no model (a batch)."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def for_model(self, model: Model) -> bytes:
        return self.raw


NO_BODY = FixedBody(b"")


def transform_request(ctx: RequestContext, call_next: Next) -> Awaitable[None]:
    """Reads ctx.body, ctx.raw_body and ctx.stream; writes ctx.upstream_bodies and
    ctx.hidden_usage."""
    body = ctx.body
    assert body is not None
    options = body.get("stream_options") or {}
    # The routes that answer choices are those whose streams carry a usage chunk only
    # when asked for it.
    if ctx.stream and ctx.endpoint.choices and not options.get("include_usage"):
        # Without it the upstream does not count the stream, and the ledger and the limits
        # would take an estimate: ask, and relay keeps the chunk from the client.
        body = {**body, "stream_options": {**options, "include_usage": True}}
        ctx.upstream_bodies = UpstreamBodies(body, None)
        ctx.hidden_usage = True
    else:
        ctx.upstream_bodies = UpstreamBodies(body, ctx.raw_body)
    return call_next(ctx)
