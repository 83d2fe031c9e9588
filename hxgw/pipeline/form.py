"""Read an upload (a multipart/form-data body) as far as its `model` field."""

from __future__ import annotations

from hxgw.errors import BadRequest
from hxgw.pipeline.client_request import body_too_large
from hxgw.pipeline.context import Next, RequestContext
from hxgw.pipeline.uploads.multipart import ModelField, form_boundary
from hxgw.pipeline.uploads.upload import Upload
from hxgw.routing.routes import GROUP_HEADER

HELD_AFTER_MODEL = 64 * 1024
"""How much of a form past its `model` field is read before it goes upstream. A form
that ends within it is held whole, so that the next candidate can have it should the
first fail (docs/uploads.md); read as the upstream takes it, its end could come in a
read of its own, straight from the client, and no other candidate could be tried."""


async def read_form(ctx: RequestContext, call_next: Next) -> None:
    """Reads the form up to the end of its `model` field; writes ctx.upload, ctx.body
    (the model, as routing reads it) and ctx.upstream_bodies.

    Uploads are not held whole: what precedes the `model` field (a file part, when
    the client sends it first, as the node SDK does) goes to a spool on disk, and
    the rest is read from the client only as the upstream takes it, but for a short
    end (HELD_AFTER_MODEL). A form without
    a `model` field is read whole (within the family's limit) and needs the group
    in X-HX-Model-Group; the upstream then gets the field added.
    """
    exchange, endpoint = ctx.exchange, ctx.endpoint
    limits = ctx.state.config.limits
    limit = limits.body_limit(endpoint.family)
    boundary = form_boundary(exchange.header("Content-Type"))
    declared = exchange.declared_length
    if declared is not None and declared > limit:
        raise body_too_large(limit, declared, endpoint.family)
    await exchange.expect_body()
    upload = Upload(exchange, boundary, endpoint.family, limit, limits.client_idle_timeout)
    try:
        await _read_to_model(upload)
        await _hold_a_short_end(upload, declared)
        ctx.body = {} if upload.value is None else {"model": _model_name(upload.value)}
        if upload.value is None and exchange.header(GROUP_HEADER) is None:
            raise BadRequest(
                "the form has no 'model' field: name a group or model in it, or a group "
                f"in the {GROUP_HEADER} header",
                param="model",
            )
        ctx.upload = ctx.upstream_bodies = upload
        await call_next(ctx)
    finally:
        upload.spool.close()


async def _read_to_model(upload: Upload) -> None:
    scanner = ModelField(upload.boundary)
    spool = upload.spool
    while scanner.value is None:
        chunk = await upload.read()
        if not chunk:
            spool.write(scanner.finish())
            break
        spool.write(scanner.feed(chunk))
    upload.value, upload.rest, upload.first_at = scanner.value, scanner.rest, scanner.first_at
    if upload.value is not None:
        upload.watch = ModelField.after_model(upload.boundary)
        upload.watch.feed(upload.rest)


async def _hold_a_short_end(upload: Upload, declared: int | None) -> None:
    """Read the rest of a form past its `model` field, when it ends within
    HELD_AFTER_MODEL: all of it, by the client's length; without one (chunked), as far
    as that. A longer one is left for the upstream to take as it comes."""
    if upload.value is None or upload.watch is None:
        return  # read whole already
    if declared is not None and declared - upload.received > HELD_AFTER_MODEL:
        return
    while not upload.whole and len(upload.rest) <= HELD_AFTER_MODEL:
        chunk = await upload.read()
        upload.rest += chunk
        upload.watch.feed(chunk)


def _model_name(value: bytes) -> str:
    try:
        name = value.decode()
    except UnicodeDecodeError:
        raise BadRequest("the form's 'model' field is not UTF-8 text", param="model") from None
    if not name:
        raise BadRequest("the form's 'model' field is empty", param="model")
    return name
