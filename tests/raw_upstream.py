"""A raw-socket upstream for the client's tests: each connection runs a handler that
reads and writes bytes exactly as the test says, however hostile."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from hxgw.upstream import Origin, UpstreamClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


class Server:
    """A loopback server running `handler` per connection, counting connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.close()

    @property
    def origin(self) -> Origin:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return Origin.from_url(f"http://127.0.0.1:{port}")


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[Server]:
    server = Server(handler)
    server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    try:
        yield server
    finally:
        server.server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head and body (the client always sends Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


async def post(client: UpstreamClient, server: Server, body: bytes = b"{}") -> bytes:
    response = await client.request(
        b"POST", server.origin, b"/v1/chat/completions", b"", [], body, connect_timeout=2
    )
    data = await response.read(1 << 30)
    response.release()
    return data


def reply(body: bytes, extra: bytes = b"") -> bytes:
    return OK_HEAD + b"Content-Length: %d\r\n" % len(body) + extra + b"\r\n" + body


async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every request on the connection with the same small JSON body."""
    while True:
        await read_request(reader)
        writer.write(reply(b'{"ok":true}'))
        await writer.drain()


def recording(seen: list[bytes]) -> Handler:
    """A handler that keeps each connection's first request in `seen`, and answers it."""

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(reply(b"{}"))
        await writer.drain()

    return record
