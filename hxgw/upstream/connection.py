"""One keep-alive HTTP/1.1 connection to an upstream, at most one exchange at a time:
sending a request on it, and whether it goes back to its pool after the response.

How the response is read and checked is `hxgw.upstream.reader`'s. A connection
goes back to the pool only when its response ended exactly where the bytes read
ended, and a streamed request body went out whole; otherwise it is closed, and
the slot it held at the upstream's gate is given back once its socket is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Protocol

from hxgw.upstream.body_writer import BodyWriter
from hxgw.upstream.reader import ResponseReader
from hxgw.upstream.response import UpstreamResponse

if TYPE_CHECKING:
    from hxgw.upstream.admission import Gate


class Home(Protocol):
    """What a connection needs of the pool it belongs to."""

    loop: asyncio.AbstractEventLoop

    def put_back(self, connection: Connection) -> None: ...
    def forget(self, connection: Connection) -> None: ...


class Connection(ResponseReader):
    """One keep-alive connection; at most one exchange on it at a time."""

    def __init__(self, pool: Home) -> None:
        self.pool = pool
        super().__init__()
        self.exchanges = 0
        self.idle_since = 0.0
        self.sent_at = 0.0
        self.connect_time = 0.0
        """How long its connect took (and TLS's handshake): a round trip or a few."""
        self.slot: Gate | None = None
        """The gate whose slot the request on this connection holds."""

    # asyncio.Protocol (the reading callbacks are ResponseReader's)
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

    # used by the pool and the response
    def send(self, head: bytes, body: bytes) -> asyncio.Future[UpstreamResponse]:
        """Write a request; the future is its response, once the status and headers are in."""
        assert self.transport is not None
        self.exchanges += 1
        self.sent_at = self.pool.loop.time()
        headers = self._expect(self.pool.loop)
        if len(body) < 64 * 1024:
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))
        return headers

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
