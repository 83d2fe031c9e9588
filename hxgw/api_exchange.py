"""One API request as the gateway's HTTP/1.1 server parsed it, and its answer.

`ApiExchange` is the pipeline's `Exchange` on an `ApiConnection`: it reads the
body the parser collected and frames the response by hand, so that a whole
answer leaves in one write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING

from hxgw.endpoints import Endpoint
from hxgw.errors import GatewayError
from hxgw.exchange import Exchange, body_stalled, body_too_large
from hxgw.memo import Memo

if TYPE_CHECKING:
    from hxgw.api_server import ApiConnection

_PHRASES = {status.value: status.phrase for status in HTTPStatus}
STATUS_LINES = {
    code: f"HTTP/1.1 {code} {_PHRASES.get(code, '')}\r\n".encode() for code in range(100, 600)
}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _latin1(raw: bytes) -> str:
    return raw.decode("latin-1")


# The paths of the API routes as text, the same str each time: its hash is worked out
# once, and the access line's cache of rendered parts is keyed by it.
_PATHS: Memo[bytes, str] = Memo(_latin1, 64)


def _header_key(name: str) -> bytes:
    return name.lower().encode("latin-1")


# Header names as the parser keys them, by the names the pipeline asks for: those are
# the gateway's own few.
_HEADER_KEYS: Memo[str, bytes] = Memo(_header_key, 64)


class ApiExchange(Exchange):
    """One API request on an `ApiConnection`: filled in by the parser as it arrives,
    then read and answered, with hand-framed HTTP/1.1, by the pipeline. One object
    for both, not two: making an object costs about 1.5k instructions."""

    __slots__ = (
        "_chunked",
        "_connection",
        "_head_pending",
        "_state",
        "chunks",
        "complete",
        "endpoint",
        "error",
        "head_size",
        "headers",
        "http10",
        "keep_alive",
        "limit",
        "method",
        "path",
        "remote",
        "size",
        "too_large",
        "url",
        "waiter",
    )

    _NOTHING, _STARTED, _DONE = 0, 1, 2

    def __init__(self, connection: ApiConnection) -> None:
        self._connection = connection
        self.remote = connection.remote
        # As the parser sees the request.
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.head_size = 0
        self.endpoint: Endpoint | None = None
        """Set, with `method` and `path`, once the head is in and names an API route."""
        self.method = ""
        self.path = ""
        self.keep_alive = True
        self.http10 = False
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = 0
        self.complete = False
        self.too_large = False
        self.error: GatewayError | None = None
        """Why the body can never complete (it broke the HTTP framing)."""
        self.waiter: asyncio.Future[None] | None = None
        # As the pipeline answers it.
        self._chunked = False
        # A streamed response's head goes out with its first piece of body: one write
        # and one TCP segment, not two.
        self._head_pending = b""
        self._state = self._NOTHING

    def routed(self, endpoint: Endpoint, target: bytes) -> None:
        """The head is in: the request is an API call to `endpoint` at path `target`."""
        self.endpoint = endpoint
        self.method = endpoint.method
        self.path = _PATHS[target]

    def wake(self) -> None:
        """Something the body's reader waits for happened."""
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def header(self, name: str) -> str | None:
        value = self.headers.get(_HEADER_KEYS[name])
        return None if value is None else value.decode("utf-8", "surrogateescape")

    def body_now(self, limit: int) -> bytes | None:
        whole = self.complete and self.error is None and not self.too_large
        if not whole or self.size > limit:
            return None  # read_body waits, or says what is wrong
        chunks = self.chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def read_body(self, limit: int, idle: float) -> bytes:
        declared = self.headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise body_too_large(limit, int(declared))
        if not self.complete and self.headers.get(b"expect", b"").lower() == b"100-continue":
            transport = self._connection.transport
            if transport is not None and not transport.is_closing():
                transport.write(CONTINUE)
        while not self.complete and not self.too_large and self.error is None:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(idle):
                    await self.waiter
            except TimeoutError:
                raise body_stalled(idle) from None
            finally:
                self.waiter = None
        if self.error is not None:
            raise self.error
        if self.too_large or self.size > limit:
            raise body_too_large(limit)
        chunks = self.chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @property
    def committed(self) -> bool:
        return self._state != self._NOTHING

    @property
    def answered(self) -> bool:
        return self._state != self._NOTHING

    @property
    def done(self) -> bool:
        return self._state == self._DONE

    def respond(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self._state = self._DONE
        transport = self._connection.transport
        if transport is None or transport.is_closing():
            return
        head = self._head(status, headers, b"Content-Length: %d\r\n" % len(body))
        if len(body) < 65536:
            transport.write(head + body)
        else:
            transport.writelines((head, body))

    async def start(self, status: int, headers: Mapping[str, str], length: int | None) -> None:
        self._state = self._STARTED
        if self.client_gone():
            raise ConnectionResetError("the client closed the connection")
        if length is not None:
            framing = b"Content-Length: %d\r\n" % length
        elif self.http10:
            framing = b""  # the body ends when the connection does
            self._connection.will_close = True
        else:
            framing = b"Transfer-Encoding: chunked\r\n"
            self._chunked = True
        self._head_pending = self._head(status, headers, framing)

    async def write(self, data: bytes) -> None:
        connection = self._connection
        transport = connection.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        if not data:
            return  # an empty chunk would end a chunked body
        head, self._head_pending = self._head_pending, b""
        if self._chunked:
            transport.writelines((head, b"%x\r\n" % len(data), data, b"\r\n"))
        elif head:
            transport.writelines((head, data))
        else:
            transport.write(data)
        if connection.write_paused:
            await connection.drain()

    async def finish(self) -> None:
        if self._state == self._DONE:
            return
        self._state = self._DONE
        transport = self._connection.transport
        if transport is None or transport.is_closing():
            return
        head, self._head_pending = self._head_pending, b""
        if self._chunked:
            transport.write(head + b"0\r\n\r\n")
        elif head:
            transport.write(head)

    def abort(self) -> None:
        self._connection.will_close = True
        self._connection.close()

    def client_gone(self) -> bool:
        transport = self._connection.transport
        return transport is None or transport.is_closing()

    def _head(self, status: int, headers: Mapping[str, str], framing: bytes) -> bytes:
        # Joined by str.join in C rather than an f-string per header: 1.6k instructions
        # less for the six or so headers of a proxied answer.
        lines = "\r\n".join(map(": ".join, headers.items()))
        if self._connection.last_response(self):
            end = b"Connection: close\r\n\r\n"
        elif self.http10:
            end = b"Connection: keep-alive\r\n\r\n"
        else:
            end = b"\r\n"
        return (
            STATUS_LINES[status]
            + self._connection.fixed_head()
            + framing
            + lines.encode("latin-1", "replace")
            + (b"\r\n" + end if lines else end)
        )
