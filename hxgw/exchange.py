"""The client's side of one proxied request, whichever HTTP server carries it.

The pipeline reads the request and writes the response only through
`Exchange`, so the same steps run on the gateway's own HTTP/1.1 protocol
(`api_server`, for the API routes) and on aiohttp's server (the operator's
routes, and any connection that begins with one).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping

from aiohttp import web

from hxgw.errors import PayloadTooLarge, RequestTimeout


def body_too_large(limit: int, declared: int | None = None) -> PayloadTooLarge:
    """The one wording of a body over the limit, on either server: by the length the
    client declared, before reading any, or by what arrived."""
    if declared is None:
        return PayloadTooLarge(f"request body is over the {limit}-byte limit")
    return PayloadTooLarge(f"request body of {declared} bytes is over the {limit}-byte limit")


def body_stalled(idle: float) -> RequestTimeout:
    return RequestTimeout(f"the request body stalled for {idle:g}s")


class Exchange(ABC):
    """A request's method, path, headers and body, and the one response it gets:
    either whole (`respond`) or streamed (`start`, `write`..., `finish`)."""

    __slots__ = ()
    method: str
    path: str
    remote: str | None

    @abstractmethod
    def header(self, name: str) -> str | None:
        """The first value of a request header, by case-insensitive name."""

    @abstractmethod
    async def read_body(self, limit: int, idle: float) -> bytes:
        """The whole request body. Raises PayloadTooLarge past `limit` bytes and
        RequestTimeout when the client sends nothing for `idle` seconds."""

    def body_now(self, limit: int) -> bytes | None:
        """The whole body if it has all arrived within `limit`, without waiting: the
        common case, read with no coroutine. None means ask `read_body`."""
        return None

    @property
    @abstractmethod
    def committed(self) -> bool:
        """Whether a status line went out (or is queued to): after that, a failure can
        only be reported in-band or by cutting the connection."""

    @property
    @abstractmethod
    def answered(self) -> bool:
        """Whether a response was given, whole or started."""

    @abstractmethod
    def respond(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """A whole response; `headers` carries its Content-Type."""

    @abstractmethod
    async def start(self, status: int, headers: Mapping[str, str], length: int | None) -> None:
        """Send the status and headers of a streamed body of `length` bytes (None: unknown)."""

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Send one piece of the body now; waits while the client reads slower than we
        write. Raises ConnectionResetError once the client is gone."""

    @abstractmethod
    async def finish(self) -> None:
        """End a streamed body."""

    @abstractmethod
    def abort(self) -> None:
        """Cut the connection: the client must see the body as incomplete."""

    @abstractmethod
    def client_gone(self) -> bool:
        """Whether the client's connection is closed or closing."""


class AiohttpExchange(Exchange):
    """An exchange carried by an aiohttp request handler, which returns `response`."""

    __slots__ = ("_request", "method", "path", "remote", "response")

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.method, self.path, self.remote = request.method, request.path, request.remote
        self.response: web.StreamResponse | None = None

    def header(self, name: str) -> str | None:
        return self._request.headers.get(name)

    async def read_body(self, limit: int, idle: float) -> bytes:
        request = self._request
        declared = request.content_length
        if declared is not None and declared > limit:
            raise body_too_large(limit, declared)
        content = request.content
        if content.is_eof():  # the whole body is already here: nothing to wait for
            data = content.read_nowait()
            if len(data) > limit:
                raise body_too_large(limit)
            return data
        chunks: list[bytes] = []
        total = 0
        # aiohttp's idle timer is off while a handler runs: a client that stalls mid-body
        # would hold its handler and connection for ever, so every read gets a deadline.
        while True:
            try:
                async with asyncio.timeout(idle):
                    chunk = await content.readany()
            except TimeoutError:
                raise body_stalled(idle) from None
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > limit:
                raise body_too_large(limit)
            chunks.append(chunk)

    @property
    def committed(self) -> bool:
        return self.response is not None and self.response.prepared

    @property
    def answered(self) -> bool:
        return self.response is not None

    def respond(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.response = web.Response(status=status, body=body, headers=headers)

    async def start(self, status: int, headers: Mapping[str, str], length: int | None) -> None:
        self.response = response = web.StreamResponse(status=status, headers=headers)
        if length is not None:
            response.content_length = length
        await response.prepare(self._request)

    async def write(self, data: bytes) -> None:
        assert self.response is not None
        await self.response.write(data)

    async def finish(self) -> None:
        assert self.response is not None
        await self.response.write_eof()

    def abort(self) -> None:
        self._request.protocol.force_close()
        if self._request.transport is not None:
            self._request.transport.close()

    def client_gone(self) -> bool:
        transport = self._request.transport
        return transport is None or transport.is_closing()
