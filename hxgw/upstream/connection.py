"""One keep-alive HTTP/1.1 connection to an upstream, at most one exchange at a time.

httptools (llhttp, the parser aiohttp itself uses) parses the response; its
body goes to an `UpstreamResponse` as it arrives.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

import httptools

from hxgw.upstream.origin import UpstreamProtocolError
from hxgw.upstream.response import UpstreamResponse


class Home(Protocol):
    """What a connection needs of the pool it belongs to."""

    loop: asyncio.AbstractEventLoop
    in_use: asyncio.Semaphore

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
            self.pool.in_use.release()

    def _lost(self, error: BaseException) -> None:
        self._settle(error)
        self.close()

    def _settle(self, error: BaseException) -> None:
        if self._headers is not None and not self._headers.done():
            self._headers.set_exception(error)
        if self.response is not None:
            self.response._fail(error)
