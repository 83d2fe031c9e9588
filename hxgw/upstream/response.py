"""An upstream response: its status and headers, and its body as it arrives.

The body is handed to the reader chunk by chunk; while more than
`READ_HIGH_WATER` bytes wait unread, the connection stops reading its socket.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from hxgw.memo import Memo

# A reader slower than its upstream: stop reading from the socket at this many
# unread bytes, and start again when they have been taken. Each client that stops
# reading holds this much until it is cut (hxgw.pipeline.relay.WRITE_GRACE): at 1 MiB,
# 600 such clients had held 1.4 GB.
READ_HIGH_WATER = 256 * 1024


class Source(Protocol):
    """What a response needs of the connection it is read from."""

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def finished(self, reusable: bool) -> None: ...


_ID_RANKS = {b"x-litellm-call-id": 0, b"x-request-id": 1, b"request-id": 2}
"""The headers an upstream names its request by, the first preferred: LiteLLM's call id
(its logs' and spend records' id), OpenAI's, Anthropic's."""
_READ = frozenset(
    (b"content-type", b"content-length", b"transfer-encoding", b"content-encoding", *_ID_RANKS)
)


def _framing_name(raw_name: bytes) -> bytes | None:
    """The lowercase name of a header that frames the body, or names the upstream's
    request; None for any other."""
    lowered = raw_name.lower()
    return lowered if lowered in _READ else None


def _media_type_of(raw_value: bytes) -> str:
    """A Content-Type without its parameters, in lowercase."""
    return raw_value.partition(b";")[0].strip().lower().decode("latin-1")


def _codings(before: str, value: bytes) -> str:
    """The Content-Encoding so far (`before`) with a field's `value` added, lowercased:
    a repeated field is one list (RFC 9110, 5.3), and identity, which changes nothing,
    is left out of it."""
    codings = [c for c in value.decode("latin-1").lower().replace(" ", "").split(",") if c]
    added = ", ".join(c for c in codings if c != "identity")
    return ", ".join(filter(None, (before, added)))


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
        "content_encoding",
        "content_length",
        "content_type",
        "raw_headers",
        "status",
        "transfer_coding",
        "transfer_encoded",
        "upstream_id",
    )

    def __init__(
        self, connection: Source, status: int, raw_headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.status = status
        self.raw_headers = raw_headers
        # The headers that frame the body, read on every response, in one pass; the rest
        # are decoded only if asked for (a multidict per response cost 4% of the CPU).
        self.content_type = ""
        self.content_length: int | None = None
        self.transfer_encoded = False
        self.transfer_coding = b""
        """The Transfer-Encoding, lowercased, its repeats joined as one list."""
        self.content_encoding = ""
        """The Content-Encoding, lowercased, its repeats joined as one list; "" for none
        (or identity, which is none)."""
        self.upstream_id: str | None = None
        """The upstream's id of the request (_ID_RANKS), for the access line."""
        id_rank = len(_ID_RANKS)
        for name, value in raw_headers:
            lowered = _framing_header[name]
            if lowered is None:
                continue
            if lowered == b"content-type" and not self.content_type:
                self.content_type = _media_type[value]
            elif lowered == b"content-length" and self.content_length is None:
                self.content_length = int(value) if value.isdigit() else None
            elif lowered == b"content-encoding":
                self.content_encoding = _codings(self.content_encoding, value)
            elif lowered == b"transfer-encoding":
                coding = b"".join(value.lower().split())
                self.transfer_coding += b"," + coding if self.transfer_encoded else coding
                self.transfer_encoded = True
            elif (rank := _ID_RANKS.get(lowered)) is not None and rank < id_rank:
                self.upstream_id, id_rank = value[:128].decode("latin-1"), rank
        self._headers: CIMultiDictProxy[str] | None = None
        self._connection: Source | None = connection
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
        data = bytearray()  # appended to in place: bytes would be copied on each read
        while len(data) < limit:
            chunk = await self.readany()
            if not chunk:
                break
            data += chunk
        return bytes(data[:limit])

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
