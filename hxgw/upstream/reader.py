"""The reading half of an upstream connection: the bytes an upstream sends, checked and
parsed into an `UpstreamResponse` (what the connection does with it, and what it sends,
are `hxgw.upstream.connection`'s).

httptools (llhttp, the parser aiohttp itself uses) parses the response; its
body goes to the `UpstreamResponse` as it arrives.

An upstream is not trusted to frame its answers well. The response head is
collected here and given to the parser whole, within `MAX_HEAD` bytes and
`MAX_FIELDS` fields (httptools joins a header value piece by piece, which is
quadratic in a value that arrives in many small reads); a chunked body's framing
between body bytes (its trailer above all) is held to `MAX_HEAD` too. A status outside
100-599 and a transfer coding other than chunked are refused. A response counts
as cleanly ended (`keep_alive`, no `_stray` bytes) only when it ended exactly
where the bytes read ended: anything after it (a body longer than its
Content-Length, the start of another response) means the stream is out of step.
"""

from __future__ import annotations

import asyncio
from typing import cast

import httptools

from hxgw.upstream.body_writer import BodyWriter
from hxgw.upstream.head import head_end, is_interim
from hxgw.upstream.origin import UpstreamProtocolError
from hxgw.upstream.response import UpstreamResponse

MAX_HEAD = 64 * 1024
"""The most bytes a response head (status line and header fields) may take."""
MAX_FIELDS = 128
"""The most header fields a response head may have (aiohttp's own limit)."""


class ResponseReader(asyncio.Protocol):
    """Reads the response to the request in flight on a connection. `Connection` is the
    rest: it starts a response (`_expect`), and says what a broken stream (`_lost`),
    stray bytes (`close`) and a released response (`finished`) do to the connection."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.received_any = False
        self.keep_alive = False
        self.response: UpstreamResponse | None = None
        self.writer: BodyWriter | None = None
        """The streamed body of the request on this connection, if it has one: an error
        answer stops it (the connection writes it)."""
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._headers: asyncio.Future[UpstreamResponse] | None = None
        self._reading_paused = False
        self._until_close = False
        self._head = bytearray()
        """The response head as it arrives, until it is whole."""
        self._in_head = False
        self._head_length = 0
        """The head's bytes in what `_collect_head` gave the parser last."""
        self._bodied = 0
        """Body bytes the parser found in what it was fed last."""
        self._framing = 0
        """Bytes parsed since the last body byte that were no body (see data_received)."""
        self._fields = 0
        self._done = False
        """The response ended: any byte the parser sees after it is out of step."""
        self._stray = False

    # What the connection does (hxgw.upstream.connection).
    def close(self) -> None:
        raise NotImplementedError

    def finished(self, reusable: bool) -> None:
        raise NotImplementedError

    def _lost(self, error: BaseException) -> None:
        raise NotImplementedError

    def _expect(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[UpstreamResponse]:
        """Get ready to read the response to a request about to be sent; the future is
        that response, once its status and headers are in."""
        self.received_any = False
        self.keep_alive = False
        self.response = None
        self._fields = 0  # a trailer's fields counted on the last response
        self._framing = 0  # and its framing
        self._until_close = False
        self._in_head, self._done = True, False
        self._headers = loop.create_future()
        return self._headers

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
        framing = len(data)  # less the head and the body bytes, as they are parsed
        if self._in_head:
            data = self._collect_head(data)
            if not data:
                return
            framing = len(data) - self._head_length
        self._bodied = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(UpstreamProtocolError("the upstream tried to switch protocols"))
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if not isinstance(cause, UpstreamProtocolError):
                cause = UpstreamProtocolError(f"the upstream sent invalid HTTP: {exc}")
            self._refuse(cause)
            return
        except httptools.HttpParserError as exc:
            self._refuse(UpstreamProtocolError(f"the upstream sent invalid HTTP: {exc}"))
            return
        # Past the head, what is no body is a chunked body's framing: chunk sizes, their
        # extensions, and the trailer, whose fields httptools joins as it does a head's.
        framing -= self._bodied
        self._framing = framing if self._bodied else self._framing + framing
        if self._framing > MAX_HEAD and not self._done:
            self._refuse(
                UpstreamProtocolError(
                    f"the upstream sent over {MAX_HEAD} bytes of chunk framing or trailer "
                    "with no body between"
                )
            )

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
        self._in_head, self._head_length = False, end - begin
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
        self._bodied += len(body)
        if self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        if self.response is not None:  # not the end of a 1xx
            self._done = True
            self.keep_alive = self.parser.should_keep_alive()
            self.response._finish()

    # used by the response: a slow reader holds the upstream back
    def pause_reading(self) -> None:
        if self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
