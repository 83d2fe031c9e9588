"""The request half of an exchange: its method, path and headers, and its body read
whole within a limit or piece by piece as it arrives, in the codings aiohttp decodes;
with the one wording of each way a body can be refused. `Exchange`
(hxgw.pipeline.exchange) adds the answer.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError
from multidict import MultiMapping

from hxgw.config.body_limits import FAMILY_LIMITS, Family
from hxgw.errors import BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedEncoding

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
DECODED = ("gzip", "deflate")
"""The request body codings the gateway reads (aiohttp decodes them; it decodes br and
zstd only where optional libraries are installed, so those are not promised)."""
ACCEPT_ENCODING = ", ".join(DECODED)
"""The Accept-Encoding of a 415 for a coding it does not read (RFC 9110, 15.5.16)."""


def body_too_large(
    limit: int, declared: int | None = None, family: Family = "json"
) -> PayloadTooLarge:
    """The one wording of a body over the limit: by the length the client declared,
    before reading any, or by what arrived; with the limit's route family and setting."""
    size = "request body" if declared is None else f"request body of {declared} bytes"
    which = FAMILY_LIMITS[family]
    return PayloadTooLarge(
        f"{size} is over the {limit}-byte limit for {which.what} (limits.{which.key})"
    )


def unsupported_coding(said: str = "") -> UnsupportedEncoding:
    """The one wording of a body in a coding the gateway does not read."""
    said = f"Content-Encoding {said}" if said else "Content-Encoding"
    return UnsupportedEncoding(
        f"the request body's {said} is not one the gateway reads: send the body as it "
        f"is, or in {' or '.join(DECODED)} with one Content-Encoding header"
    )


def sole_header(headers: MultiMapping[str], name: str) -> str | None:
    """A header that may come once (a key, the group): given twice it is refused rather
    than one of them picked, as a proxy in front may have picked the other."""
    values = headers.getall(name, ())
    if len(values) > 1:
        raise BadRequest(f"the request has {len(values)} {name} headers: send one")
    return values[0] if values else None


def joined_header(headers: MultiMapping[str], name: str) -> str | None:
    """A list header given on several lines as one value (RFC 9110, 5.3)."""
    values = headers.getall(name, ())
    return ", ".join(values) if values else None


def parser_reason(exc: BaseException) -> str:
    """What aiohttp's parser found wrong, in a few words: without the status it puts in
    front ("400, message: ...") and the dump of the bytes it puts after."""
    cause = exc.__cause__ or exc
    text = getattr(cause, "message", None) or str(cause) or type(cause).__name__
    reason = (str(text).strip().splitlines() or ["bad request"])[0].rstrip(" :.")
    return reason[:1].lower() + reason[1:200]


class ClientRequest:
    """A request's method, path, headers and body, as the steps read them."""

    __slots__ = ("closing", "method", "path", "remote", "request")

    def __init__(self, request: web.BaseRequest) -> None:
        self.request = request
        self.method, self.path, self.remote = request.method, request.path, request.remote
        self.closing = False
        """The body is left unread (`leave_unread`): the answer closes its connection.
        (A drain closes it too: `Exchange._closes`.)"""

    def header(self, name: str) -> str | None:
        """The first value of a request header, by case-insensitive name."""
        return self.request.headers.get(name)

    def joined_header(self, name: str) -> str | None:
        """A list header given on several lines as one value (`joined_header`)."""
        return joined_header(self.request.headers, name)

    def sole_header(self, name: str) -> str | None:
        """A header that may come once (`sole_header`)."""
        return sole_header(self.request.headers, name)

    @property
    def query(self) -> str:
        """The request's query string as the client sent it (still percent-encoded)."""
        return self.request.rel_url.raw_query_string

    async def read_body(self, limit: int, idle: float, total: float) -> bytes:
        """The whole request body. Raises PayloadTooLarge past `limit` bytes, and
        RequestTimeout when the client sends nothing for `idle` seconds or the body has
        not all arrived after `total` (a slow POST holds a connection and a handler)."""
        request = self.request
        declared = request.content_length
        if declared is not None and declared > limit:
            raise body_too_large(limit, declared)
        whole = self.body_now(limit)
        if whole is not None:
            return whole
        content = request.content
        await self.expect_body()
        # One growing buffer, not a list of chunks: a body sent in tiny chunks would
        # otherwise cost an object per chunk, many times the body's own size.
        body = bytearray()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + total
        # aiohttp's idle timer is off while a handler runs: a client that stalls mid-body
        # would hold its handler and connection for ever, so every read gets a deadline.
        while True:
            wait = min(idle, deadline - loop.time())
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    chunk = await content.readany()
            except TimeoutError:
                if wait < idle:
                    raise RequestTimeout(
                        f"the request body did not arrive within {total:g}s"
                    ) from None
                raise RequestTimeout(f"the request body stalled for {idle:g}s") from None
            except RequestPayloadError as exc:  # its Content-Encoding does not decode
                raise self._unreadable(exc) from None
            if not chunk:
                return bytes(body)
            if len(body) + len(chunk) > limit:
                raise body_too_large(limit)
            body += chunk

    async def expect_body(self) -> None:
        """Ask for the body of a client that waits to be asked (Expect: 100-continue)."""
        request = self.request
        # An HTTP/1.0 client gets no 1xx, and its Expect is ignored (RFC 9110, 10.1.1).
        if (
            request.version >= (1, 1)
            and request.headers.get("Expect", "").lower() == "100-continue"
        ):
            # aiohttp's low-level server leaves Expect to the handler; the client waits
            # for this before it sends the body.
            await request.writer.write(CONTINUE)

    @property
    def declared_length(self) -> int | None:
        """The length of the body as it is read: its Content-Length; None when it comes
        chunked, or compressed (aiohttp decodes it, so that length is not the body's)."""
        return None if self.compressed() else self.request.content_length

    def compressed(self) -> bool:
        """Whether the body comes in a coding aiohttp decodes. UnsupportedEncoding for any
        coding but those, a list of them, or the header given twice: parsers differ on
        which of two they obey, so the gateway would check one body and pass on another."""
        headers = self.request.headers
        if "Content-Encoding" not in headers:
            return False
        values = headers.getall("Content-Encoding")
        coding = values[0].strip().lower()
        if len(values) == 1 and coding in ("", "identity"):
            return False
        if len(values) == 1 and coding in DECODED:
            return True
        raise unsupported_coding(", ".join(repr(value) for value in values))

    async def read_some(self, idle: float) -> bytes:
        """The next bytes of the body as they arrive; b"" at its end. RequestTimeout
        when none come for `idle` seconds, and a 400 when the body breaks off (the
        client left, or its chunked framing is wrong): the client's failure, never
        to be mistaken for an upstream's."""
        try:
            async with asyncio.timeout(idle):
                return await self.request.content.readany()
        except TimeoutError:
            raise RequestTimeout(f"the request body stalled for {idle:g}s") from None
        except RequestPayloadError as exc:
            raise self._unreadable(exc) from None
        except Exception as exc:
            raise BadRequest(
                f"the request body broke off: {str(exc) or type(exc).__name__}"
            ) from None

    def body_now(self, limit: int) -> bytes | None:
        """The whole body if it has all arrived within `limit`, without waiting (the
        common case, read with no coroutine). None means ask `read_body`."""
        self.compressed()  # refuses a coding it cannot read
        content = self.request.content
        if not content.is_eof():
            return None
        try:
            data = content.read_nowait()
        except RequestPayloadError as exc:
            raise self._unreadable(exc) from None
        if len(data) > limit:
            raise body_too_large(limit)
        return data

    def leave_unread(self) -> None:
        """Read no more of the body: the connection closes after the answer. aiohttp would
        otherwise read the rest to discard it, decoding it as it goes (a gzip body of 2 MB
        that inflates to 2 GB held the event loop for seconds, on a route that reads no
        body, with no key), or meet a decoding error again and log a traceback."""
        self.closing = True
        self.request.content.feed_eof()
        # Told to close, aiohttp feeds the ended body no more bytes (and then decodes none).
        self.request.protocol.close()

    def _unreadable(self, exc: Exception) -> BadRequest:
        """The 400 for a body that cannot be decoded: what follows cannot be framed."""
        self.leave_unread()
        if isinstance(exc.__cause__, ContentEncodingError):
            coding = self.header("Content-Encoding")
            return BadRequest(f"the request body cannot be read: it is not valid {coding}")
        return BadRequest(f"the request body cannot be read: {parser_reason(exc)}")
