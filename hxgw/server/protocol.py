"""aiohttp's server and connection, with the gateway's answer to what they refuse.

aiohttp answers a request its parser rejects (bad framing, a header too long,
a smuggling attempt) itself, in plain text, and logs the traceback. Here such
a request gets an OpenAI-shaped error like every other, and one access line;
lines for refused requests are limited per address, so that a scanner's
flood of them cannot fill the journal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from aiohttp import StreamReader, web
from aiohttp.http import HttpVersion10, HttpVersion11
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler, RequestPayloadError, _ErrInfo

from hxgw.errors import GatewayError, RequestTimeout, VersionNotSupported
from hxgw.observe import AccessLog, RequestIds
from hxgw.pipeline.exchange import SERVER
from hxgw.server.quota import PerAddressQuota
from hxgw.server.refused_heads import head_timeout, is_anthropic_client, refusal

log = structlog.get_logger("hxgw.server")

_HTTP_1 = (HttpVersion11, HttpVersion10)
HEAD_KEPT = 1024
"""The bytes of a request's head kept for its error's shape: its request line, and the
SDKs' headers as far as Anthropic's `anthropic-version`, some 600 bytes in."""


class GatewayConnection(RequestHandler):
    """One client connection, served by aiohttp's protocol."""

    address: str | None = None
    """The client's address, once the server admitted the connection."""
    partial_head = False
    """Bytes of a request head arrived that no complete request has followed yet."""
    _last_body: StreamReader | None = None
    """The body of the newest request whose head arrived."""
    _refused = False
    """The parser refused a request on this connection, which is closed after its answer."""
    _head_start = b""
    """The first bytes of the newest request head (HEAD_KEPT): the route whose error
    shape a request aiohttp refuses gets, as its parser keeps no part of it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        manager = self._manager
        if isinstance(manager, GatewayServer):
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if isinstance(peer, tuple) else "-"
            if not manager.admit(address):
                transport.close()  # refused before a byte of it is read
                return
            self.address = address
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        # Bytes that come after the last request's body (or first on the connection) and
        # complete no head are the start of one. Not aiohttp's "waiting for a request":
        # bytes sent with the connection arrive before its handler waits.
        body = self._last_body
        # Not past a request the parser refused: its error, answered later, reads the
        # head it kept, which the rest of a large head arriving meanwhile must not replace.
        between = (body is None or body.is_eof()) and not self._refused
        if between and not self.partial_head:
            self._head_start = data[:HEAD_KEPT]
        elif between and len(self._head_start) < HEAD_KEPT:  # a head that comes in pieces
            self._head_start += data[: HEAD_KEPT - len(self._head_start)]
        count = self._request_count
        super().data_received(data)
        if self._request_count != count:
            self.partial_head = False
            self._fail_cut_body(body)
            self._refuse_versions(self._request_count - count)
            self._last_body = self._messages[-1][1] if self._messages else None
            self._refused |= any(isinstance(m, _ErrInfo) for m, _ in self._messages)
        elif data and between:
            self.partial_head = True

    def _fail_cut_body(self, body: StreamReader | None) -> None:
        """aiohttp's decoder finds a deflate body cut short only at its end, and its parser
        takes that for the error of a new request: the body's reader would wait for the
        rest until the body timeout, and the error be answered after it. The body fails
        instead, as one that does not decode (a 400, and the connection closed)."""
        messages = self._messages
        if not messages or body is None or body.is_eof():
            return
        message = messages[-1][0]
        if isinstance(message, _ErrInfo) and isinstance(message.exc, ContentEncodingError):
            messages.pop()
            error = RequestPayloadError("the request body does not decode")
            error.__cause__ = message.exc
            body.set_exception(error)

    def _refuse_versions(self, new: int) -> None:
        """Turn each of the `new` requests just parsed whose version is not HTTP/1.x into
        a 505. aiohttp would answer it in kind (`HTTP/2.0 200 OK` framed as HTTP/1.1);
        its answer to a request it refuses has a status line of its own (HTTP/1.0), and
        the connection is closed after it, as a request of that version cannot be read
        further."""
        messages = self._messages
        for at in range(max(-new, -len(messages)), 0):
            message = messages[at][0]
            if isinstance(message, _ErrInfo) or message.version in _HTTP_1:
                continue
            major, minor = message.version
            error = VersionNotSupported(f"HTTP/{major}.{minor} is not served; use HTTP/1.1")
            messages[at] = (_ErrInfo(status=505, exc=error, message=error.message), EMPTY_PAYLOAD)

    def resume_reading(self, resume_parser: bool = True) -> None:
        # A request body's stream calls this on every read below its low-water mark, and
        # aiohttp then feeds the parser an empty buffer; when nothing was paused there is
        # nothing to resume or to parse again.
        if self._reading_paused or self._buffer_paused:
            super().resume_reading(resume_parser)

    def _process_keepalive(self) -> None:
        # aiohttp closes a connection whose head has not completed within its keep-alive
        # timeout, in silence; a client that sent part of a head is told why first.
        waiter = self._waiter
        if (
            self.partial_head
            and waiter is not None
            and not waiter.done()
            and self.transport is not None
            and self._loop.time() >= self._next_keepalive_close_time
        ):
            self.partial_head = False
            error = RequestTimeout("the request head did not arrive in time")
            headers, body = self._answer(self.address, error, {})
            self.transport.write(head_timeout(headers, body))
        super()._process_keepalive()

    def connection_lost(self, exc: BaseException | None) -> None:
        manager = self._manager
        if isinstance(manager, GatewayServer) and self.address is not None:
            manager.release(self.address)
            self.address = None
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # As aiohttp does: an answer began, so the connection can only be cut.
            raise ConnectionError("the response had begun; no error can follow it")
        error, headers = refusal(status, exc, message, self._head_start)
        headers["Server"] = SERVER
        headers, body = self._answer(request.remote, error, headers)
        response = web.Response(status=error.status, body=body, headers=headers)
        response.force_close()
        return response

    def _answer(
        self, address: str | None, error: GatewayError, headers: dict[str, str]
    ) -> tuple[dict[str, str], bytes]:
        """The headers and body of an answer to a request with no route yet, in the error
        shape of the route its request line names; its access line is written."""
        manager = self._manager
        request_id = manager.ids.new() if isinstance(manager, GatewayServer) else "-"
        headers["Content-Type"] = "application/json"
        headers["X-Request-ID"] = request_id
        if is_anthropic_client(self._head_start):
            headers["request-id"] = request_id  # what Anthropic's SDK reads
            body = error.to_anthropic_json(request_id)
        else:
            body = error.to_json()
        if isinstance(manager, GatewayServer):
            manager.refused(address, error, len(body), request_id)
        return headers, body


class GatewayServer(web.Server):
    """aiohttp's low-level server (no URL dispatcher, no middleware) whose connections
    are `GatewayConnection`s."""

    def __init__(
        self,
        handler: Any,
        *,
        access: AccessLog,
        ids: RequestIds,
        per_address: Callable[[], tuple[int, Callable[[str], bool]]],
        counted_as: Mapping[str, str],
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.access, self.ids = access, ids
        self.refused_lines = PerAddressQuota()
        """The access lines of refused requests, 10 per client and minute (a scanner's
        flood of malformed requests must not fill the journal)."""
        self.per_address = per_address
        """The current config's cap on concurrent connections from one address, and which
        addresses (trusted proxies) it does not apply to."""
        self.counted_as = counted_as
        """The client an address is counted as (hxgw.keys.guard.counted_as: an IPv6 one by
        its /64, which one host holds whole and could open each connection from anew)."""
        self.open: dict[str, int] = {}
        self._cap_warnings = PerAddressQuota(limit=1)
        """The warnings of a client refused at its connection cap, one a minute."""

    def admit(self, address: str) -> bool:
        """Count a new connection from `address`, unless its client has its share open
        already."""
        client = self.counted_as[address]
        count = self.open.get(client, 0)
        cap, exempt = self.per_address()
        if count >= cap and not exempt(address):
            if self._cap_warnings.allow(client):  # once per client and minute
                log.warning(
                    "too many connections from one address; refusing new ones",
                    address=address,
                    open=count,
                    limit=cap,
                )
            return False
        self.open[client] = count + 1
        return True

    def release(self, address: str) -> None:
        client = self.counted_as[address]
        count = self.open.pop(client, 0) - 1
        if count > 0:
            self.open[client] = count

    def __call__(self) -> RequestHandler:
        return GatewayConnection(self, loop=self._loop, **self._kwargs)

    def pre_shutdown(self) -> None:
        """At the drain: a busy connection closes after its answer, as aiohttp has it, and
        an idle one now. aiohttp (3.14) only cancels an idle one's wait for its next
        request and leaves its socket open: a request a client sends on it (a keep-alive
        connection of its pool) had waited unanswered for the drain's end, then been cut."""
        # aiohttp says no other way which connections wait for a request; should a later
        # one name it otherwise, the drain is as aiohttp's own, not broken.
        idle = [conn for conn in self.connections if getattr(conn, "_waiter", None) is not None]
        super().pre_shutdown()
        for conn in idle:
            conn.force_close()

    def refused(self, address: str | None, error: GatewayError, size: int, request_id: str) -> None:
        """The access line of a request answered before it had a route."""
        if self.refused_lines.allow(self.counted_as[address] if address else "-"):
            self.access.write(
                "-",
                "-",
                request_id,
                status=error.status,
                model=None,
                group=None,
                key=None,
                latency=0.0,
                ttfb=None,
                size=size,
                failovers=0,
                outcome="malformed" if error.status == 400 else error.code or error.type,
            )
