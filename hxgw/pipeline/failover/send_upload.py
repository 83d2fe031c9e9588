"""An upload sent to one candidate: the request's form, streamed as the upstream takes
it (hxgw.pipeline.uploads.upload), under deadlines that leave the client's pace out of the
first-byte timeout. Called by `Tries.at` (hxgw.pipeline.failover.attempt), in place of
a held body's request.
"""

from __future__ import annotations

import asyncio
import math
import time

from hxgw.config import Model
from hxgw.pipeline.context import RequestContext
from hxgw.pipeline.failover.failures import RETRYABLE_STATUS
from hxgw.pipeline.uploads.multipart import form_content_type
from hxgw.upstream import Gate, UpstreamResponse, header_line


async def send_upload(
    ctx: RequestContext, model: Model, headers: list[bytes], gate: Gate
) -> tuple[UpstreamResponse, bytes]:
    """The upload to `model`: its response, once it has a head (and, unless its status
    is one to fail over on, a first body byte).

    How long the body takes to go is the client's doing, not the upstream's: until
    it is sent, only the total timeout bounds the exchange (and the client's idle
    timeout each read); the first-byte timeout starts once it is sent, or when the
    upstream answers before that (an early 413, say). It is a plain answer's
    (`timeouts.answer`), as for any request not known to stream: whether the upstream
    will stream is the form's to say, and the gateway does not read it. A transcription
    or an image edit cut at a stream's `first_byte` had been lost after minutes of work
    upstream (and a form held whole sent to the next model, and billed twice)."""
    state = ctx.state
    timeouts = state.config.timeouts
    wait = state.first_byte_timeout(ctx.stream)
    assert ctx.upload is not None  # read_form or take_file set it
    loop = asyncio.get_running_loop()
    body = ctx.upstream_bodies.for_model(model)
    left = ctx.started + timeouts.total - time.perf_counter()
    async with asyncio.timeout_at(_at(loop, left)) as deadline:

        def sent() -> None:
            first_byte, now = _at(loop, wait), deadline.when()
            if first_byte is not None and (now is None or first_byte < now):
                deadline.reschedule(first_byte)

        body.on_sent = sent
        response = await state.client.upload(
            state.origins[model.upstream],
            (ctx.upstream_path or ctx.endpoint.upstream_path).encode(),
            state.upload_head[model.upstream],
            [*headers, header_line("Content-Type", form_content_type(ctx.upload.boundary))],
            body,
            body.length,
            connect_timeout=timeouts.connect,
            slot=gate,
        )
        sent()
        try:
            first = b"" if response.status in RETRYABLE_STATUS else await response.readany()
        except BaseException:
            response.close()
            raise
    return response, first


def _at(loop: asyncio.AbstractEventLoop, seconds: float) -> float | None:
    """The loop time `seconds` from now; None for no deadline (a timeout of .inf)."""
    return None if math.isinf(seconds) else loop.time() + max(seconds, 0.0)
