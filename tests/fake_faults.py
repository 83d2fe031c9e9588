"""The faults a fake upstream plays when its model's `Behaviour` asks for them, whichever
API the route speaks (tests/fake_upstream.py for OpenAI's, tests/fake_anthropic.py for
Anthropic's): slow or reset before the headers, silent after them, a whole body cut off,
stalled or slowed in its middle, a stream reset, stalled or garbled before a chunk, and
a scripted answer. They live in one place so that a gateway test meets the same fault,
played the same way, on every route it calls.

A fault that stops an answer for good waits an hour: forever, for a test, until the
gateway leaves and the server cancels the handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from tests.fake_upstream import Behaviour

FOREVER = 3600


def reset(request: web.Request) -> None:
    transport = request.transport
    assert transport is not None
    transport.abort()


async def before_headers(request: web.Request, how: Behaviour) -> None:
    """`header_delay`, then `reset_before_headers`: an upstream slow to answer, or one
    that drops the connection before a byte of its answer."""
    if how.header_delay:
        await asyncio.sleep(how.header_delay)
    if how.reset_before_headers:
        reset(request)
        await asyncio.sleep(FOREVER)


def _content_type(streaming: bool) -> str:
    return "text/event-stream" if streaming else "application/json"


async def silence(request: web.Request, how: Behaviour, streaming: bool,
                  headers: Mapping[str, str] | None = None) -> None:
    """`silent_after_headers`: the status line and the headers (the route's own, then the
    test's `headers`), then nothing at all."""
    response = web.StreamResponse(headers={"Content-Type": _content_type(streaming),
                                           **(headers or {}), **(how.headers or {})})
    await response.prepare(request)
    await asyncio.sleep(FOREVER)


async def whole_body(request: web.Request, payload: bytes, how: Behaviour,
                     headers: Mapping[str, str] | None = None) -> web.StreamResponse:
    """A JSON answer, with a Content-Length unless `content_length` is off (then chunked),
    written in two halves: between them a reset (`reset_after_chunks`, whatever its
    count), a stall (`hang_mid_body`) or a pause (`chunk_delay`)."""
    response = web.StreamResponse(headers={"Content-Type": "application/json",
                                           **(headers or {}), **(how.headers or {})})
    if how.content_length:
        response.content_length = len(payload)
    await response.prepare(request)
    half = len(payload) // 2
    await response.write(payload[:half])
    if how.reset_after_chunks is not None:
        reset(request)
        await asyncio.sleep(FOREVER)
    if how.hang_mid_body:
        await asyncio.sleep(FOREVER)
    await asyncio.sleep(how.chunk_delay)
    await response.write(payload[half:])
    await response.write_eof()
    return response


async def open_stream(request: web.Request, how: Behaviour,
                      headers: Mapping[str, str] | None = None) -> web.StreamResponse:
    """An SSE answer, its headers sent: the route's own, then the test's `headers`."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache",
                                           **(headers or {}), **(how.headers or {})})
    await response.prepare(request)
    return response


async def before_chunk(request: web.Request, response: web.StreamResponse, index: int,
                       how: Behaviour, garbage: bytes) -> None:
    """The faults a stream plays before its chunk `index` (from 0): a reset, a stall, or
    `garbage` (the start of the route's own kind of event, never finished) then a reset."""
    if index == how.reset_after_chunks:
        reset(request)
        await asyncio.sleep(FOREVER)
    if index == how.hang_after_chunks:
        await asyncio.sleep(FOREVER)
    if index == how.garbage_after_chunks:
        await response.write(garbage)
        reset(request)
        await asyncio.sleep(FOREVER)


async def scripted(request: web.Request, how: Behaviour, streaming: bool) -> web.StreamResponse:
    """`script`: a 200 whose bytes the test wrote, piece by piece, then `script_end`."""
    assert how.script is not None
    response = web.StreamResponse(headers={"Content-Type": _content_type(streaming)})
    response.headers.update(how.headers or {})
    if how.content_length and not streaming:
        response.content_length = sum(len(piece) for _, piece in how.script)
    await response.prepare(request)
    for delay, piece in how.script:
        if delay:
            await asyncio.sleep(delay)
        await response.write(piece)
    if how.script_end == "reset":
        reset(request)
        await asyncio.sleep(FOREVER)
    if how.script_end == "hang":
        await asyncio.sleep(FOREVER)
    await response.write_eof()
    return response
