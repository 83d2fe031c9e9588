"""The HTTP/1.1 client of the proxied path: keep-alive connections to the upstreams.

Why not aiohttp's ClientSession here: a profile of a load run put two thirds of
the gateway's CPU per request in it (timers, tracing hooks, cookie jar, header
merging, payload registry), about 220 µs of the obvious aiohttp proxy's 300.
The proxied path needs far less: POST a body that is already bytes, get the
status and headers, then read the body as it arrives. That is a protocol over
an asyncio transport with httptools (llhttp, the parser aiohttp itself uses)
doing the parsing. The model lists and readiness probes use it too, so that one
pool and one cap cover every connection to the upstreams.

What it keeps from a full client: a pool per origin, a cap on connections in
use, TLS, chunked and read-until-close bodies, back-pressure on slow readers,
and one quiet retry when a reused idle connection turns out to be closed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import Coroutine, Iterable
from typing import Any, NamedTuple, cast
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from hxgw.memo import Memo
from hxgw.upstream.slots import Slots

# A reader slower than its upstream: stop reading from the socket at this many
# unread bytes, and start again when they have been taken.
READ_HIGH_WATER = 1024 * 1024
# Longer than any upstream keeps an idle connection open is pointless: uvicorn
# (LiteLLM) closes after 5 s, so an older connection is closed before reuse.
IDLE_KEEPALIVE = 4.5
# How often a pool closes the connections idle for longer than that. Not a timer per
# connection: starting and stopping one on every reuse cost 4 µs a request.
IDLE_SWEEP = 0.5


def header_line(name: str, value: str) -> bytes:
    """One framed header line. aiohttp's parser already refuses CR and LF in a client's
    header values; dropping them here too keeps a value from adding a header of its own."""
    if "\r" in value or "\n" in value:
        value = value.replace("\r", "").replace("\n", "")
    return f"{name}: {value}\r\n".encode("latin-1", "replace")


class UpstreamConnectError(ConnectionError):
    """No connection could be opened to the upstream."""


class UpstreamProtocolError(ConnectionError):
    """The upstream answered with something that is not HTTP/1.1."""


class Origin(NamedTuple):
    """Where one upstream lives, parsed once per config snapshot. A NamedTuple, not a
    frozen dataclass: it keys the pools, and a tuple hashes without a Python call."""

    host: str
    port: int
    tls: bool
    base_path: bytes
    host_header: bytes

    @classmethod
    def from_url(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or not url.isascii():
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)  # ValueError for a port out of range
        netloc = parts.netloc.rpartition("@")[2]
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            base_path=parts.path.rstrip("/").encode(),
            host_header=netloc.encode("idna"),
        )


_FRAMING = frozenset((b"content-type", b"content-length", b"transfer-encoding"))


def _framing_name(raw_name: bytes) -> bytes | None:
    """The lowercase name of a header that frames the body, or None for any other."""
    lowered = raw_name.lower()
    return lowered if lowered in _FRAMING else None


def _media_type_of(raw_value: bytes) -> str:
    """A Content-Type without its parameters, in lowercase."""
    return raw_value.partition(b";")[0].strip().lower().decode("latin-1")


# Asked once per spelling: an upstream sends the same names and types on every response.
_framing_header = Memo(_framing_name, 256)
_media_type = Memo(_media_type_of, 64)


class UpstreamResponse:
    """Status and headers of an upstream response, and its body as it arrives."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_complete",
        "_connection",
        "_error",
        "_headers",
        "_waiter",
        "content_length",
        "content_type",
        "raw_headers",
        "status",
        "transfer_encoded",
    )

    def __init__(
        self, connection: _Connection, status: int, raw_headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.status = status
        self.raw_headers = raw_headers
        # The headers that frame the body, read on every response, in one pass; the rest
        # are decoded only if asked for (a multidict per response cost 4% of the CPU).
        self.content_type = ""
        self.content_length: int | None = None
        self.transfer_encoded = False
        for name, value in raw_headers:
            lowered = _framing_header[name]
            if lowered is None:
                continue
            if lowered == b"content-type" and not self.content_type:
                self.content_type = _media_type[value]
            elif lowered == b"content-length" and self.content_length is None:
                self.content_length = int(value) if value.isdigit() else None
            elif lowered == b"transfer-encoding":
                self.transfer_encoded = True
        self._headers: CIMultiDictProxy[str] | None = None
        self._connection: _Connection | None = connection
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        if self._headers is None:
            self._headers = CIMultiDictProxy(
                CIMultiDict(
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in self.raw_headers
                )
            )
        return self._headers

    def at_eof(self) -> bool:
        """True once the whole body has arrived and been read."""
        return self._complete and not self._chunks

    async def readany(self) -> bytes:
        """Whatever body bytes have arrived (waiting for some); b"" at the end."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        if self._buffered >= READ_HIGH_WATER and self._connection is not None:
            self._connection.resume_reading()
        self._buffered = 0
        return data

    async def read(self, limit: int) -> bytes:
        """Up to `limit` bytes of the body (fewer only at its end)."""
        data = b""
        while len(data) < limit:
            chunk = await self.readany()
            if not chunk:
                break
            data += chunk
        return data[:limit]

    def release(self) -> None:
        """Done with the response: a fully read connection goes back to the pool."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.finished(reusable=self._complete and self._error is None)

    def close(self) -> None:
        """Done with the response, read or not: the connection is closed."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.finished(reusable=False)

    # Called by the connection.
    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered >= READ_HIGH_WATER and self._connection is not None:
            self._connection.pause_reading()
        self._wake()

    def _finish(self) -> None:
        self._complete = True
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if not self._complete:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one exchange on it at a time."""

    def __init__(self, pool: _OriginPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchanges = 0
        self.idle_since = 0.0
        self.received_any = False
        self.keep_alive = False
        self.holds_slot = False
        self.response: UpstreamResponse | None = None
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._headers: asyncio.Future[UpstreamResponse] | None = None
        self._reading_paused = False
        self._until_close = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._headers is None:
            # Bytes on an idle connection answer no request of ours: the stream is no
            # longer in step with the parser, so the connection cannot be reused.
            self.close()
            return
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._lost(UpstreamProtocolError("the upstream tried to switch protocols"))
        except httptools.HttpParserError as exc:
            self._lost(UpstreamProtocolError(f"the upstream sent invalid HTTP: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.pool.forget(self)
        self._give_back_slot()
        if self.response is not None and self._until_close and exc is None:
            self.response._finish()  # a body delimited by the end of the connection
        error = ConnectionResetError("the upstream closed the connection")
        if exc is not None:
            error = ConnectionResetError(f"the upstream connection failed: {exc}")
        self._settle(error)

    # No pause_writing/resume_writing: a request is written whole at once, and its body
    # is held for failover anyway, so waiting for the buffer to drain would bound nothing.

    # httptools callbacks (no on_message_begin: one call fewer per response)
    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        raw_headers, self._raw_headers = self._raw_headers, []
        status = self.parser.get_status_code()
        if status < 200:
            return  # 1xx: an interim answer; the real one follows
        response = UpstreamResponse(self, status, raw_headers)
        self.response = response
        self._until_close = response.content_length is None and not response.transfer_encoded
        if self._headers is not None and not self._headers.done():
            self._headers.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        if self.response is not None:
            self.keep_alive = self.parser.should_keep_alive()
            self.response._finish()

    # used by the pool and the response
    def send(self, head: bytes, body: bytes) -> asyncio.Future[UpstreamResponse]:
        """Write a request; the future is its response, once the status and headers are in."""
        assert self.transport is not None
        self.exchanges += 1
        self.received_any = False
        self.keep_alive = False
        self.response = None
        self._until_close = False
        self._headers = self.pool.loop.create_future()
        if len(body) < 64 * 1024:
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))
        return self._headers

    def pause_reading(self) -> None:
        if self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()

    def finished(self, reusable: bool) -> None:
        self.response = None
        self._headers = None
        self.resume_reading()
        reusable = reusable and self.keep_alive
        if reusable and self.transport is not None and not self.transport.is_closing():
            self.pool.put_back(self)
            self._give_back_slot()
        else:
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # the slot comes back in connection_lost
        else:
            self._give_back_slot()

    def _give_back_slot(self) -> None:
        if self.holds_slot:
            self.holds_slot = False
            self.pool.in_use.give()

    def _lost(self, error: BaseException) -> None:
        self._settle(error)
        self.close()

    def _settle(self, error: BaseException) -> None:
        if self._headers is not None and not self._headers.done():
            self._headers.set_exception(error)
        if self.response is not None:
            self.response._fail(error)


class _OriginPool:
    """Idle connections to one origin, most recently used first."""

    def __init__(self, origin: Origin, in_use: Slots, tls: ssl.SSLContext | None):
        self.origin = origin
        self.in_use = in_use
        self.tls = tls
        self.idle: collections.deque[_Connection] = collections.deque()
        self.loop = asyncio.get_running_loop()
        self._sweeper: asyncio.TimerHandle | None = None

    async def exchange(self, head: bytes, body: bytes, connect_timeout: float) -> UpstreamResponse:
        connection = self._reuse() or await self._checkout(connect_timeout, reuse=True)
        while True:
            try:
                return await connection.send(head, body)
            except BaseException as exc:
                connection.close()
                # A reused connection that the upstream had closed while idle, before it
                # read a byte of this request: the request never reached it, so it goes
                # out again on a new one (whose first exchange is never tried again).
                stale = (
                    isinstance(exc, ConnectionError)
                    and connection.exchanges > 1
                    and not connection.received_any
                )
                if not stale:
                    raise
            connection = await self._checkout(connect_timeout, reuse=False)

    def _reuse(self) -> _Connection | None:
        """An idle connection, if there is one and a slot is free right now: the common
        case, served without a coroutine."""
        if not self.idle or not self.in_use.try_take():
            return None
        connection = self._idle_connection()
        if connection is None:
            self.in_use.give()
            return None
        connection.holds_slot = True
        return connection

    async def _checkout(self, connect_timeout: float, reuse: bool) -> _Connection:
        """A connection that holds an in-use slot until it is idle again or closed.

        A closed connection gives its slot back only once its socket is gone, so
        the cap bounds open sockets too, not just requests."""
        await self.in_use.take()
        try:
            connection = self._idle_connection() if reuse else None
            if connection is None:
                connection = await self._open(connect_timeout)
        except BaseException:
            self.in_use.give()
            raise
        connection.holds_slot = True
        return connection

    def _idle_connection(self) -> _Connection | None:
        now = self.loop.time()
        while self.idle:
            connection = self.idle.popleft()
            if connection.transport is None or connection.transport.is_closing():
                continue
            if now - connection.idle_since >= IDLE_KEEPALIVE:
                connection.close()  # the upstream may be closing it right now
                continue
            return connection
        return None

    async def _open(self, connect_timeout: float) -> _Connection:
        origin = self.origin
        try:
            async with asyncio.timeout(connect_timeout):
                _, connection = await self.loop.create_connection(
                    lambda: _Connection(self),
                    origin.host,
                    origin.port,
                    ssl=self.tls,
                    server_hostname=origin.host if self.tls else None,
                )
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamConnectError(
                f"cannot connect to {origin.host}:{origin.port}: {exc}"
            ) from exc
        return connection

    def put_back(self, connection: _Connection) -> None:
        connection.idle_since = self.loop.time()
        self.idle.appendleft(connection)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(IDLE_SWEEP, self._sweep)

    def forget(self, connection: _Connection) -> None:
        with contextlib.suppress(ValueError):
            self.idle.remove(connection)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        while self.idle:
            self.idle.pop().close()

    def _sweep(self) -> None:
        """Close the connections idle for too long: the oldest are at the right end."""
        self._sweeper = None
        now = self.loop.time()
        while self.idle and now - self.idle[-1].idle_since >= IDLE_KEEPALIVE:
            self.idle.pop().close()
        if self.idle:
            self._sweeper = self.loop.call_later(IDLE_SWEEP, self._sweep)


class UpstreamClient:
    """Connection pools for every origin, with one cap on connections in use."""

    def __init__(self, max_in_use: int) -> None:
        self._in_use = Slots(max_in_use)
        self._pools: dict[Origin, _OriginPool] = {}
        self._tls: ssl.SSLContext | None = None

    def request(
        self,
        method: bytes,
        origin: Origin,
        path: bytes,
        fixed_headers: bytes,
        headers: Iterable[bytes],
        body: bytes = b"",
        *,
        connect_timeout: float,
    ) -> Coroutine[Any, Any, UpstreamResponse]:
        """Send a request to `origin` + `path`; the awaitable returns once the status
        and headers are in.

        `fixed_headers` is a block of complete header lines computed once per
        snapshot; `headers` are the request's own, already framed lines. The head is
        framed here and the pool's coroutine is handed back to be awaited: one
        coroutine fewer between a request and the event loop."""
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _OriginPool(origin, self._in_use, self._tls_for(origin))
        length = b"Content-Length: %d\r\n" % len(body) if body or method != b"GET" else b""
        head = b"".join(
            (
                method,
                b" ",
                origin.base_path,
                path,
                b" HTTP/1.1\r\nHost: ",
                origin.host_header,
                b"\r\n",
                length,
                fixed_headers,
                *headers,
                b"\r\n",
            )
        )
        return pool.exchange(head, body, connect_timeout)

    async def fetch(
        self,
        origin: Origin,
        path: bytes,
        fixed_headers: bytes,
        headers: Iterable[bytes],
        *,
        limit: int,
        connect_timeout: float,
    ) -> tuple[int, bytes]:
        """GET a small document whole (up to `limit` bytes): its status and body."""
        response = await self.request(
            b"GET", origin, path, fixed_headers, headers, connect_timeout=connect_timeout
        )
        try:
            return response.status, await response.read(limit)
        finally:
            response.release()

    def _tls_for(self, origin: Origin) -> ssl.SSLContext | None:
        if not origin.tls:
            return None
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
