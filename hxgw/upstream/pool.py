"""The idle keep-alive connections to one upstream origin, and how a request gets one:
reused (most recently used first) or newly opened, holding its turn at the upstream's
cap (hxgw.upstream.admission) until the connection is idle again or closed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import AsyncIterable

from hxgw.upstream.admission import Gate
from hxgw.upstream.connection import Connection
from hxgw.upstream.origin import Origin, UpstreamConnectError, UpstreamConnectTimeout
from hxgw.upstream.response import UpstreamResponse

# Longer than any upstream keeps an idle connection open is pointless: uvicorn
# (LiteLLM) closes after 5 s, so an older connection is closed before reuse.
IDLE_KEEPALIVE = 4.5
# How often a pool closes the connections idle for longer than that. Not a timer per
# connection: starting and stopping one on every reuse cost 4 µs a request.
IDLE_SWEEP = 0.5
# A connection closed while idle is found out within a round trip of the write. One lost
# later had its request read, maybe worked on: sent again it would run (and be billed)
# twice, unseen by the model's health, where failing over is what the pipeline does. A
# round trip is known from the connect (TLS's handshake counts a few): a loopback
# upstream that drops a request it read 0.3 s before had been sent it again.
STALE_ROUND_TRIPS = 3
STALE_FLOOR = 0.1  # and a loop running late by as much
STALE_WITHIN = 0.5
MAX_IDLE = 1024
"""The most idle connections kept to one origin; past it the oldest is closed. An upload
always opens one of its own (a streamed body cannot be sent again on a stale one): a burst
of them had left thousands idle, each a descriptor, for the whole keep-alive."""


class OriginPool:
    """Idle connections to one origin, most recently used first."""

    def __init__(self, origin: Origin, tls: ssl.SSLContext | None):
        self.origin = origin
        self.tls = tls
        self.idle: collections.deque[Connection] = collections.deque()
        self.loop = asyncio.get_running_loop()
        self._sweeper: asyncio.TimerHandle | None = None
        self.retired = False
        """No more requests come: a connection given back is closed, not kept."""

    async def exchange(
        self, head: bytes, body: bytes, connect_timeout: float, slot: Gate | None
    ) -> UpstreamResponse:
        connection = await self._checkout(connect_timeout, slot, reuse=True)
        while True:
            try:
                return await connection.send(head, body)
            except BaseException as exc:
                # A reused connection that the upstream had closed while idle, before it
                # read a byte of this request: the request never reached it, so it goes
                # out again on a new one (whose first exchange is never tried again).
                stale = (
                    isinstance(exc, ConnectionError)
                    and connection.exchanges > 1
                    and not connection.received_any
                    and self.loop.time() - connection.sent_at < _stale_within(connection)
                )
                if not stale:
                    connection.close()  # its slot comes back once its socket is gone
                    raise
                # The slot moves to the next connection, unless the lost connection
                # gave it back already: then the retry takes a turn again.
                held, connection.slot = connection.slot, None
                connection.close()
            if held is None and slot is not None:
                await slot.enter()
            connection = await self._checkout(connect_timeout, slot, reuse=False)

    async def exchange_streamed(
        self,
        head: bytes,
        body: AsyncIterable[bytes],
        length: int | None,
        connect_timeout: float,
        slot: Gate | None,
    ) -> UpstreamResponse:
        # Always a new connection: a reused one the upstream closed while idle is found
        # out only by writing to it, and a streamed body cannot be sent again.
        connection = await self._checkout(connect_timeout, slot, reuse=False)
        try:
            return await connection.send_streamed(head, body, length)
        except BaseException:
            connection.close()
            raise

    async def _checkout(self, connect_timeout: float, slot: Gate | None, reuse: bool) -> Connection:
        """A connection that holds the request's slot until it is idle again or closed.

        A closed connection gives its slot back only once its socket is gone, so
        the cap bounds open sockets too, not just requests."""
        try:
            connection = self._idle_connection() if reuse else None
            if connection is None:
                connection = await self._open(connect_timeout)
        except BaseException:
            if slot is not None:
                slot.leave()
            raise
        connection.slot = slot
        return connection

    def _idle_connection(self) -> Connection | None:
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

    async def _open(self, connect_timeout: float) -> Connection:
        origin = self.origin
        started = self.loop.time()
        try:
            async with asyncio.timeout(connect_timeout):
                _, connection = await self.loop.create_connection(
                    lambda: Connection(self),
                    origin.host,
                    origin.port,
                    ssl=self.tls,
                    server_hostname=origin.host if self.tls else None,
                )
        except TimeoutError as exc:  # an OSError too, with nothing to say
            raise UpstreamConnectTimeout(
                f"cannot connect to {origin.host}:{origin.port}: no answer within"
                f" {connect_timeout:g}s"
            ) from exc
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamConnectError(
                f"cannot connect to {origin.host}:{origin.port}: {exc}"
            ) from exc
        connection.connect_time = self.loop.time() - started
        return connection

    def put_back(self, connection: Connection) -> None:
        if self.retired:
            connection.close()
            return
        connection.idle_since = self.loop.time()
        self.idle.appendleft(connection)
        if len(self.idle) > MAX_IDLE:
            self.idle.pop().close()
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(IDLE_SWEEP, self._sweep)

    def forget(self, connection: Connection) -> None:
        with contextlib.suppress(ValueError):
            self.idle.remove(connection)

    def retire(self) -> None:
        self.retired = True
        self.close()

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


def _stale_within(connection: Connection) -> float:
    """How soon after its write a reused connection's failure shows it was closed while
    idle (and its request never read): a few of its round trips, within bounds."""
    return min(STALE_WITHIN, max(STALE_FLOOR, STALE_ROUND_TRIPS * connection.connect_time))
