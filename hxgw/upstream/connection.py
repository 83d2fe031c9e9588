"""One keep-alive HTTP/1.1 connection to an upstream, at most one exchange at a time.

httptools (llhttp, the parser aiohttp itself uses) parses the response; its
body goes to an `UpstreamResponse` as it arrives.

An upstream is not trusted to frame its answers well. The response head is
collected here and given to the parser whole, within `MAX_HEAD` bytes and
`MAX_FIELDS` fields (httptools joins a header value piece by piece, which is
quadratic in a value that arrives in many small reads). A status outside
100-599 and a transfer coding other than chunked are refused. A connection
goes back to the pool only when its response ended exactly where the bytes
read ended: anything after it (a body longer than its Content-Length, the start
of another response) means the stream is out of step, and it is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Protocol, cast

import httptools

from hxgw.upstream.body_writer import BodyWriter
from hxgw.upstream.head import head_end, is_interim
from hxgw.upstream.origin import UpstreamProtocolError
from hxgw.upstream.response import UpstreamResponse

if TYPE_CHECKING:
    from hxgw.upstream.admission import Gate

MAX_HEAD = 64 * 1024
"""The most bytes a response head (status line and header fields) may take."""
MAX_FIELDS = 128
"""The most header fields a response head may have (aiohttp's own limit)."""


class Home(Protocol):
    """What a connection needs of the pool it belongs to."""

    loop: asyncio.AbstractEventLoop

    def put_back(self, connection: Connection) -> None: ...
    def forget(self, connection: Connection) -> None: ...


class Connection(asyncio.Protocol):
    """One keep-alive connection; at most one exchange on it at a time."""

    def __init__(self, pool: Home) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchanges = 0
        self.idle_since = 0.0
        self.sent_at = 0.0
        self.received_any = False
        self.keep_alive = False
        self.slot: Gate | None = None
        """The gate whose slot the request on this connection holds."""
        self.response: UpstreamResponse | None = None
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._headers: asyncio.Future[UpstreamResponse] | None = None
        self._reading_paused = False
        self._until_close = False
        self._head = bytearray()
        """The response head as it arrives, until it is whole."""
        self._in_head = False
        self._fields = 0
        self._done = False
        """The response ended: any byte the parser sees after it is out of step."""
        self._stray = False
        self.writer: BodyWriter | None = None
        """The streamed body of the request on this connection, if it has one."""

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
        if self._in_head:
            data = self._collect_head(data)
            if not data:
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(UpstreamProtocolError("the upstream tried to switch protocols"))
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if not isinstance(cause, UpstreamProtocolError):
                cause = UpstreamProtocolError(f"the upstream sent invalid HTTP: {exc}")
            self._refuse(cause)
        except httptools.HttpParserError as exc:
            self._refuse(UpstreamProtocolError(f"the upstream sent invalid HTTP: {exc}"))

    def _collect_head(self, data: bytes) -> bytes:
        """Hold the head back until it is whole; then it goes to the parser in one piece,
        with whatever followed it. Searching only the new bytes (and the three before
        them) keeps this linear however small the reads.

        Interim answers (1xx, but 101) are dropped here: parsed, the start of the head
        after one in the same read went to the parser, and its rest waited here."""
        head = self._head
        search = max(0, len(head) - 3)
        head += data
        begin = 0
        while (end := head_end(head, search)) >= 0 and is_interim(head, begin):
            begin = search = end
        if begin:
            del head[:begin]
        if end < 0:
            if len(head) > MAX_HEAD:
                self._refuse(
                    UpstreamProtocolError(f"the upstream's response head is over {MAX_HEAD} bytes")
                )
            return b""
        whole, self._head = bytes(head), bytearray()
        self._in_head = False
        return whole

    def _refuse(self, error: UpstreamProtocolError) -> None:
        if self._done:
            # The response itself was whole; what followed it only ends the connection.
            self.keep_alive = False
            self._stray = True
            return
        self._lost(error)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.writer is not None:
            self.writer.stop()
        self.pool.forget(self)
        self._give_back_slot()
        if self.response is not None and self._until_close and exc is None:
            self.response._finish()  # a body delimited by the end of the connection
        error = ConnectionResetError("the upstream closed the connection")
        if exc is not None:
            error = ConnectionResetError(f"the upstream connection failed: {exc}")
        self._settle(error)

    # A bytes body is written whole at once: it is held for failover anyway, so waiting
    # for the buffer to drain would bound nothing. A streamed one waits (BodyWriter).
    def pause_writing(self) -> None:
        if self.writer is not None:
            self.writer.pause()

    def resume_writing(self) -> None:
        if self.writer is not None:
            self.writer.resume()

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self._done:
            self._stray = True
            raise UpstreamProtocolError("the upstream sent more than one response")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > MAX_FIELDS:
            raise UpstreamProtocolError(f"the upstream sent over {MAX_FIELDS} header fields")
        if self.response is None:
            # Past the head, a field is a chunked body's trailer: nothing relays it, and
            # kept it would open the next response on this connection, another request's.
            self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        raw_headers, self._raw_headers = self._raw_headers, []
        self._fields = 0
        status = self.parser.get_status_code()
        if not 100 <= status <= 599:
            raise UpstreamProtocolError(f"the upstream answered with status {status}")
        if status < 200:
            self._in_head = True  # 1xx: an interim answer; the real head follows
            return
        self._in_head = False
        response = UpstreamResponse(self, status, raw_headers)
        if response.transfer_encoded and response.transfer_coding != b"chunked":
            coding = response.transfer_coding.decode("latin-1")
            raise UpstreamProtocolError(
                f"the upstream's Transfer-Encoding {coding!r} is not chunked"
            )
        self.response = response
        self._until_close = response.content_length is None and not response.transfer_encoded
        if status >= 400 and self.writer is not None:
            # An error before the whole body went (a 413, say): the upstream will not
            # read the rest, so stop sending it (RFC 9112, 9.5).
            self.writer.stop()
        if self._headers is not None and not self._headers.done():
            self._headers.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        if self.response is not None:  # not the end of a 1xx
            self._done = True
            self.keep_alive = self.parser.should_keep_alive()
            self.response._finish()

    # used by the pool and the response
    def send(self, head: bytes, body: bytes) -> asyncio.Future[UpstreamResponse]:
        """Write a request; the future is its response, once the status and headers are in."""
        assert self.transport is not None
        self.exchanges += 1
        self.sent_at = self.pool.loop.time()
        self.received_any = False
        self.keep_alive = False
        self.response = None
        self._fields = 0  # a trailer's fields counted on the last response
        self._until_close = False
        self._in_head, self._done = True, False
        self._headers = self.pool.loop.create_future()
        if len(body) < 64 * 1024:
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))
        return self._headers

    def send_streamed(
        self, head: bytes, body: AsyncIterable[bytes], length: int | None
    ) -> asyncio.Future[UpstreamResponse]:
        """Write a request head, then its body as `body` yields it: `length` bytes, or
        with chunked framing when that is None. The future is the response, as for
        `send`."""
        headers = self.send(head, b"")
        self.writer = BodyWriter(self, body, length, self.pool.loop)
        return headers

    def body_failed(self, error: BaseException) -> None:
        self._lost(error)

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
        reusable = reusable and self.keep_alive and not self._stray
        if self.writer is not None:
            reusable = reusable and self.writer.sent
            self.writer.stop()
            self.writer = None
        if reusable and self.transport is not None and not self.transport.is_closing():
            self.pool.put_back(self)
            self._give_back_slot()
        else:
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.stop()
        if self.transport is not None:
            self.transport.abort()  # the slot comes back in connection_lost
        else:
            self._give_back_slot()

    def _give_back_slot(self) -> None:
        if self.slot is not None:
            slot, self.slot = self.slot, None
            slot.leave()

    def _lost(self, error: BaseException) -> None:
        self._settle(error)
        self.close()

    def _settle(self, error: BaseException) -> None:
        if self._headers is not None and not self._headers.done():
            self._headers.set_exception(error)
        if self.response is not None:
            self.response._fail(error)
