"""`POST /v1/files`: the form goes upstream as the client sends it.

A file names no model, so nothing in the form is rewritten: its bytes are read
from the client only as fast as the upstream takes them, never held (up to
`limits.max_file_bytes`, 512 MiB by default), and watched only for the fields
that steer LiteLLM (an `api_base` would have it send its key elsewhere). With
nothing kept, another upstream cannot be tried once the first has taken any of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from hxgw.config import Model
from hxgw.config.body_limits import Family
from hxgw.pipeline.client_request import body_too_large
from hxgw.pipeline.context import Next, RequestContext
from hxgw.pipeline.uploads.multipart import ModelField, form_boundary
from hxgw.pipeline.uploads.upload import Upload

FAMILY: Family = "files"


async def take_file(ctx: RequestContext, call_next: Next) -> None:
    """Reads the Content-Type and length; writes ctx.upload and ctx.upstream_bodies."""
    exchange = ctx.exchange
    limits = ctx.state.config.limits
    limit = limits.body_limit(FAMILY)
    boundary = form_boundary(exchange.header("Content-Type"))  # a 400 unless a form
    declared = exchange.declared_length
    if declared is not None and declared > limit:
        raise body_too_large(limit, declared, FAMILY)
    await exchange.expect_body()
    upload = Upload(exchange, boundary, FAMILY, limit, limits.client_idle_timeout)
    upload.watch = ModelField.watching(boundary)
    ctx.upload = upload
    ctx.upstream_bodies = AsSent(upload)
    await call_next(ctx)


class AsSent:
    """The same body, as the client sends it, for whichever upstream is tried."""

    __slots__ = ("_upload",)

    def __init__(self, upload: Upload) -> None:
        self._upload = upload

    def for_model(self, model: Model) -> AsSentBody:
        return AsSentBody(self._upload)


class AsSentBody:
    """An async iterable of the client's bytes; its length is the client's (None when
    it sends chunked, and then so does the gateway)."""

    __slots__ = ("_upload", "length", "on_sent")

    def __init__(self, upload: Upload) -> None:
        self._upload = upload
        self.length = upload.exchange.declared_length
        self.on_sent: Callable[[], None] | None = None
        """Called once the last byte has been handed to the connection."""

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[bytes]:
        async for chunk in self._upload.unread():
            yield chunk
        if self.on_sent is not None:
            self.on_sent()
