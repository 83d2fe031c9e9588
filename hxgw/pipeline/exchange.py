"""The client's side of one request, as the pipeline's steps read and answer it.

Steps never touch aiohttp's request or response directly: they ask for a
header or the body (`ClientRequest`, hxgw.pipeline.client_request) and give a
whole answer (`respond`) or a streamed one (`start`, `write`..., `finish`).
That keeps each step testable with a hand-made exchange and leaves the framing
to aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Protocol

from aiohttp import HttpVersion11 as HTTP11
from aiohttp import web

from hxgw.errors import GatewayError
from hxgw.pipeline.client_request import ClientRequest
from hxgw.pipeline.cors import cors_headers
from hxgw.pipeline.whole_response import WholeResponse, plain_answer

SERVER = "hxgw"


DISCARDED_MOST = 64 * 1024 * 1024
"""The most of a body no step read that is decoded to be dropped (`discard_unread`)."""
DISCARD_IDLE = 2.0
"""Seconds without a byte after which a body being dropped is left unread."""


class Draining(Protocol):
    """The process's requests under way (hxgw.runtime.Inflight), as an answer asks them."""

    draining: bool


class Exchange(ClientRequest):
    """A request (`ClientRequest`), and the one response it gets."""

    __slots__ = ("cors", "ended", "inflight", "response")

    def __init__(
        self,
        request: web.BaseRequest,
        cors: str | None = None,
        inflight: Draining | None = None,
    ) -> None:
        super().__init__(request)
        self.inflight = inflight
        """The process's requests under way: a drain begun while this one ran closes its
        connection too (`_closes`)."""
        self.response: web.StreamResponse | None = None
        self.cors = cors
        """The Access-Control-Allow-Origin its answer carries (`hxgw.pipeline.cors`)."""
        self.ended = False
        """Whether a streamed body went out whole: the client has all of it."""

    @property
    def committed(self) -> bool:
        """Whether a status line went out: after that, a failure can only be reported
        in-band or by cutting the connection."""
        return self.response is not None and self.response.prepared

    def respond(self, status: int, headers: dict[str, str], body: bytes) -> None:
        """A whole response; `headers` (the caller's own, completed here) carries its
        Content-Type."""
        headers["Server"] = SERVER
        if self.cors is not None:
            headers.update(cors_headers(self.cors))
        response: web.StreamResponse
        if plain_answer(self.request, status):
            response = WholeResponse(status, headers, body)
        else:
            response = web.Response(status=status, body=body, headers=headers)
        self.response = response
        if self._closes():
            response.force_close()

    def rewrite(self, body: bytes) -> None:
        """A new body for the whole response `respond` made, before it goes."""
        response = self.response
        assert isinstance(response, WholeResponse | web.Response) and not response.prepared
        response.body = body

    async def start(self, status: int, headers: Mapping[str, str], length: int | None) -> None:
        """Send the status and headers of a streamed body of `length` bytes (None: unknown)."""
        self.response = response = web.StreamResponse(status=status, headers=headers)
        if length is not None:
            response.content_length = length
        elif self.request.version < HTTP11:
            # No chunked framing in HTTP/1.0: its end is the connection's. aiohttp kept
            # the connection open all the same, and the client waited for an end.
            response.force_close()
        self._finish_head(response)
        await response.prepare(self.request)

    def take(self, response: web.StreamResponse) -> None:
        """A response made elsewhere (the operator's routes) as this request's answer."""
        self.response = response
        self._finish_head(response)

    def _finish_head(self, response: web.StreamResponse) -> None:
        response.headers["Server"] = SERVER
        if self.cors is not None:
            response.headers.update(cors_headers(self.cors))
        if self._closes():
            response.force_close()

    def _closes(self) -> bool:
        """Whether the answer closes its connection, and says so: every answer given while
        the process drains does, or a proxy that keeps its connections to the gateway
        sends its next request down one about to close."""
        return self.closing or (self.inflight is not None and self.inflight.draining)

    async def write(self, data: bytes) -> None:
        """Send one piece of the body now; waits while the client reads slower than we
        write. Raises ConnectionResetError once the client is gone."""
        assert self.response is not None
        await self.response.write(data)

    async def finish(self) -> None:
        """End a streamed body."""
        assert self.response is not None
        await self.response.write_eof()
        self.ended = True

    async def discard_unread(self, idle: float, within: float) -> None:
        """Read a compressed body no step read to its end, decoded and dropped: the
        client, still sending, then reads its answer on a connection that stays in step
        (closed on unread bytes, the socket resets, and httpx loses the answer). Past
        DISCARDED_MOST bytes or `within` seconds the rest is left unread and the
        connection closed: aiohttp would decode it all to discard it after the answer (a
        gzip body of 2 MB that inflates to 2 GB held the event loop for seconds, no key
        needed). So is one from a client that waits to be asked for it (`Expect`), or
        stops sending for DISCARD_IDLE seconds: its answer must not wait on it."""
        read = 0
        if self.header("Expect") is None:  # else it waits to be asked: it sends nothing
            with contextlib.suppress(GatewayError, TimeoutError):
                async with asyncio.timeout(within):
                    while chunk := await self.read_some(min(idle, DISCARD_IDLE)):
                        read += len(chunk)
                        if read > DISCARDED_MOST:
                            break
                    else:
                        return  # all of it, kept in step
        self.leave_unread()
        assert self.response is not None
        self.response.force_close()

    def abort(self) -> None:
        """Cut the connection: the client must see the body as incomplete."""
        self.request.protocol.force_close()
        if self.request.transport is not None:
            self.request.transport.close()

    def drop(self) -> None:
        """Cut the connection at once, what is buffered for it dropped: a client that
        reads no more would hold it, and that buffer, for as long as it stays connected."""
        self.request.protocol.force_close()
        if self.request.transport is not None:
            self.request.transport.abort()

    def client_gone(self) -> bool:
        """Whether the client's connection is closed or closing."""
        transport = self.request.transport
        return transport is None or transport.is_closing()
