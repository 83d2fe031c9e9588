"""The gateway's own HTTP/1.1 server for the API routes.

aiohttp's server spends about 80 µs of CPU on a request before any of the
gateway's code runs (its request, response and header objects, its routing
and middleware machinery), while the budget for a whole proxied request is
150. So connections that carry API calls are served here: httptools parses,
responses are framed by hand and go out in one write, and each request runs
the same pipeline as on aiohttp, through an `Exchange`.

A connection passes to aiohttp for good when one of its requests is not an
API call (the operator's routes, unknown paths, wrong methods, upgrades):
aiohttp gets that request's bytes as they came and serves the rest of the
connection. That needs the raw bytes, so it happens only for a request that
began a read. A non-API request pipelined behind an API call instead ends
the connection after the answers before it, which RFC 9112 §9.3.2 lets a
client retry.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import cast

import httptools
import structlog

from hxgw.api_exchange import STATUS_LINES, ApiExchange
from hxgw.endpoints import PROXIED, Endpoint, client_paths
from hxgw.errors import BadRequest, GatewayError, HeadersTooLarge, UriTooLong
from hxgw.handler import handle
from hxgw.runtime import Runtime
from hxgw.state import StateHolder

log = structlog.get_logger("hxgw.api_server")

ROUTES: Mapping[tuple[bytes, bytes], Endpoint] = {
    (endpoint.method.encode(), path.encode()): endpoint
    for endpoint in PROXIED
    for path in client_paths(endpoint)
}
# The same limits as aiohttp's defaults for the request line and a header field.
MAX_URL = 8190
MAX_FIELD = 16384
MAX_HEAD = 65536
# How long a connection closed with an unread body still reads (and drops) what the
# client sends, so that it receives the answer instead of a reset.
LINGER = 2.0
# At shutdown, how long a client that connected before the listener closed has to send
# its first request: the kernel completes the handshake before we accept, so such a
# client has done nothing wrong, and closing on it would lose a request never answered.
FIRST_REQUEST_GRACE = 1.0


class _HandOver(Exception):
    """Raised inside the parser: this request belongs to aiohttp."""


class _Refused(Exception):
    """Raised inside the parser: a non-API request pipelined behind another one."""


class ApiServer:
    """The listening socket's protocol factory, and the connections it serves."""

    def __init__(
        self,
        holder: StateHolder,
        runtime: Runtime,
        fallback: Callable[[], asyncio.Protocol],
    ) -> None:
        self.holder, self.inflight = holder, runtime.inflight
        self.fallback = fallback
        self.connections: set[ApiConnection] = set()
        self.draining = False
        self._date = b""
        self._date_second = 0
        self._sweeper: asyncio.TimerHandle | None = None
        self._grace: asyncio.TimerHandle | None = None

    def __call__(self) -> ApiConnection:
        if self._sweeper is None:
            self._sweep()
        return ApiConnection(self)

    def fixed_head(self) -> bytes:
        """The header lines every response carries; Date changes once a second."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            date = email.utils.formatdate(now, usegmt=True)
            self._date = f"Server: hxgw\r\nDate: {date}\r\n".encode()
        return self._date

    def pre_shutdown(self) -> None:
        """Stop keeping connections alive; close the idle ones now. A connection that
        has not sent its first request yet, or is sending a request head, is a client
        that connected before the listener closed: it gets a short grace to be served."""
        self.draining = True
        for connection in list(self.connections):
            connection.close_if_idle()
        self._grace = asyncio.get_running_loop().call_later(
            FIRST_REQUEST_GRACE, self._close_unserved
        )

    def busy(self) -> bool:
        """Whether a connection still has a request coming (within the grace), queued or
        being served."""
        in_grace = self._grace is not None
        return any(
            connection.serving or (in_grace and connection.waiting)
            for connection in self.connections
        )

    def _close_unserved(self) -> None:
        self._grace = None
        for connection in list(self.connections):
            if connection.waiting:
                connection.close()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        for connection in list(self.connections):
            connection.close()

    def _sweep(self) -> None:
        """Close connections idle (or stuck in their headers) for the idle timeout.
        One timer for all of them, instead of one per request."""
        timeout = self.holder.config.limits.client_idle_timeout
        loop = asyncio.get_running_loop()
        now = loop.time()
        for connection in list(self.connections):
            since = connection.idle_since
            if since is not None and now - since >= timeout:
                connection.close()
        self._sweeper = loop.call_later(min(1.0, timeout / 4), self._sweep)


class ApiConnection(asyncio.Protocol):
    """One client connection: parse requests, serve them one at a time, in order."""

    def __init__(self, server: ApiServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.remote: str | None = None
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self._parsing: ApiExchange | None = None
        self._queue: deque[ApiExchange] = deque()
        # One task serves the connection's requests in turn, made at its first request:
        # making, registering and dropping a task per request cost 3k instructions more
        # than waking this one.
        self._task: asyncio.Task[None] | None = None
        self._next: asyncio.Future[None] | None = None  # set while the task waits for one
        self._answering = False
        # The bytes of the request being parsed, kept while its headers arrive and only
        # when it began a read: what aiohttp would need if the request is handed over.
        self._head_chunks: list[bytes] | None = None
        self.idle_since: float | None = None
        self.fresh = True  # no request has begun on it yet
        self.will_close = False
        self._reading_paused = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.remote = peer[0] if isinstance(peer, tuple) else None
        self.idle_since = self._loop.time()
        self._server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            return  # closing: what else the client sends is dropped
        if self._head_chunks is not None:
            self._head_chunks.append(data)
        elif self._parsing is None:
            self._head_chunks = [data]  # a request begins with this read
        try:
            parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _HandOver):
                self._hand_over()
            elif isinstance(cause, _Refused):
                self._stop_reading()
            elif isinstance(cause, GatewayError):
                self._reject(cause)
            else:
                log.error("HTTP parser callback failed", error=repr(cause))
                self._reject(BadRequest("the request could not be parsed"))
        except httptools.HttpParserError as exc:
            self._reject(BadRequest(f"malformed HTTP request: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._parser = None
        if self._task is not None:
            self._task.cancel()  # the client left: stop its upstream request now
            self._task = None
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("the client closed the connection"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- httptools callbacks (no on_message_begin: a request's first callback is its
    # target's, and each call from the parser costs about 1.2k instructions)

    def on_url(self, url: bytes) -> None:
        request = self._parsing
        if request is None:
            self.fresh = False
            request = self._parsing = ApiExchange(self)
        request.url += url
        if len(request.url) > MAX_URL:
            raise UriTooLong(f"the request target is longer than {MAX_URL} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self._parsing
        assert request is not None
        size = len(name) + len(value)
        request.head_size += size
        if size > MAX_FIELD or request.head_size > MAX_HEAD:
            raise HeadersTooLarge(
                f"request headers are over the limit ({MAX_FIELD} bytes a field, {MAX_HEAD} in all)"
            )
        request.headers.setdefault(name.lower(), value)

    def on_headers_complete(self) -> None:
        request, parser = self._parsing, self._parser
        assert request is not None and parser is not None
        target = request.url.partition(b"?")[0]
        endpoint = ROUTES.get((parser.get_method(), target))
        if endpoint is None or parser.should_upgrade():
            if self._head_chunks is not None and not self._in_flight:
                raise _HandOver
            raise _Refused
        self._head_chunks = None
        request.routed(endpoint, target)
        request.keep_alive = parser.should_keep_alive()
        request.http10 = parser.get_http_version() == "1.0"
        request.limit = self._server.holder.config.limits.max_body_bytes
        self.idle_since = None  # the body has its own deadline, per read
        pipelined = self._in_flight  # answered after the ones before it
        self._queue.append(request)
        if pipelined:
            if not self._reading_paused and self.transport is not None:
                self._reading_paused = True
                self.transport.pause_reading()
        elif self._task is None:
            self._task = self._loop.create_task(self._serve())
        elif self._next is not None:
            if not self._next.done():
                self._next.set_result(None)
            self._next = None

    def on_body(self, body: bytes) -> None:
        request = self._parsing
        assert request is not None
        if request.too_large:
            return
        request.size += len(body)
        if request.size > request.limit:
            request.too_large = True
            request.chunks.clear()
        else:
            request.chunks.append(body)
        request.wake()

    def on_message_complete(self) -> None:
        request = self._parsing
        assert request is not None
        request.complete = True
        request.wake()
        self._parsing = None

    # -- serving

    async def _serve(self) -> None:
        """Answer the connection's requests in order, until it closes or must."""
        server, queue, task = self._server, self._queue, self._task
        while True:
            if not queue:
                self.idle_since = self._loop.time()
                self._next = self._loop.create_future()
                await self._next  # cancelled when the connection closes
            exchange = queue.popleft()
            if not queue and self._reading_paused and self.transport is not None:
                self._reading_paused = False
                self.transport.resume_reading()
            assert exchange.endpoint is not None
            self._answering = True
            try:
                await handle(server.holder, server.inflight, exchange.endpoint, exchange, task)
            except asyncio.CancelledError:
                # The client left, or shutdown gave up on the request: it is closed below.
                self._answering = False
                self._finished(exchange)
                raise
            except Exception:
                log.exception("request failed outside the pipeline")
            self._answering = False
            if not self._finished(exchange):
                return

    def _finished(self, exchange: ApiExchange) -> bool:
        """After a request: whether the connection goes on to the next one."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        if not exchange.done:
            self.will_close = True  # cut short: the client must not take it as whole
        if self.will_close:
            self._close_after(lingering=not exchange.complete)
            return False
        return True

    async def drain(self) -> None:
        """Wait until the client has taken what is buffered for it."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        if self._write_paused:
            self._drain_waiter = self._loop.create_future()
            await self._drain_waiter

    def fixed_head(self) -> bytes:
        return self._server.fixed_head()

    @property
    def write_paused(self) -> bool:
        return self._write_paused

    def last_response(self, request: ApiExchange) -> bool:
        """Decide, as a response to `request` is framed, whether it is the connection's
        last: the client asked so, its body was not read whole, or shutdown is on."""
        if not request.keep_alive or not request.complete or self._server.draining:
            self.will_close = True
        return self.will_close

    # -- ending

    @property
    def waiting(self) -> bool:
        """Nothing being served, but a request is expected: the first, or one whose
        head is arriving."""
        if self._parser is None or self._in_flight:
            return False  # closing, or being served
        return self.fresh or self._parsing is not None or self._head_chunks is not None

    @property
    def serving(self) -> bool:
        """A request is being answered, or queued behind one, and the answers can still
        go out (a connection that is closing has given up on what it queued)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        return self._in_flight

    @property
    def _in_flight(self) -> bool:
        """A request is being served, or queued behind the one that is."""
        return self._answering or bool(self._queue)

    def close_if_idle(self) -> None:
        if not self.waiting and not self._in_flight:
            self.close()

    def close(self) -> None:
        self._parser = None
        if self.transport is not None:
            self.transport.close()

    def _close_after(self, lingering: bool) -> None:
        """Close once what is buffered is sent. With the request body still arriving,
        read and drop it for a while first: closing a socket with unread input makes
        the kernel send a reset, which can destroy the answer before the client reads it."""
        transport = self.transport
        assert transport is not None
        self._parser = None
        if not lingering:
            transport.close()
            return
        if self._reading_paused:
            transport.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
        self._loop.call_later(LINGER, transport.close)

    def _stop_reading(self) -> None:
        """Answer what came before; the refused request and anything after it are dropped."""
        self._parser = None
        self.will_close = True
        if not self._in_flight and self.transport is not None:
            self.transport.close()

    def _reject(self, error: GatewayError) -> None:
        """A request that cannot be parsed: answer it if nothing is in flight, then close.
        When it is the one being served (its body broke the framing), its pipeline
        answers, from the body read."""
        self._parser = None
        self.will_close = True
        if self._parsing is not None and self._parsing.endpoint is not None:
            self._parsing.error = error
            self._parsing.wake()
        transport = self.transport
        if transport is None or self._in_flight:
            return
        body = error.to_json()
        head = STATUS_LINES[error.status] + self.fixed_head()
        transport.write(
            head
            + b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % len(body)
            + body
        )
        self._close_after(lingering=True)

    def _hand_over(self) -> None:
        """Give the connection, and the bytes of the request that began it, to aiohttp."""
        transport, chunks = self.transport, self._head_chunks
        assert transport is not None and chunks is not None
        self._server.connections.discard(self)
        self._parser = None
        if self._task is not None:
            self._task.cancel()  # waiting for a request that will never come to it
            self._task = None
        protocol = self._server.fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._reading_paused:
            transport.resume_reading()
        protocol.data_received(b"".join(chunks))
