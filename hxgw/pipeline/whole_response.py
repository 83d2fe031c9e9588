"""A whole answer of known length, its head framed in one pass and sent with the
body in one write.

aiohttp's `web.Response` is made for every kind of answer: it copies the headers
into a CIMultiDict, looks for cookies, compression and chunking, and sends the
body down three layers of `write_eof`. The gateway's own answers (every proxied
chat reply that came in one read, every error) need none of that. Framed here, an answer
costs about half of what `web.Response` took (timed alone), and a proxied chat request
8.6% less CPU (`make bench-ab`, docs/performance-server-swap.md). Only plain HTTP/1.1 answers with a body are
made here; `Exchange.respond` gives the rest (HEAD, 204 and 304, HTTP/1.0) to
`web.Response`, which knows their rules.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import rfc822_formatted_time
from multidict import CIMultiDict, CIMultiDictProxy

NO_BODY_STATUS = frozenset({204, 304})
EMPTY_BODY_METHODS = frozenset({"HEAD", "CONNECT"})


class WholeResponse(web.StreamResponse):
    """The answer aiohttp's server prepares and ends like any other: `prepare` writes
    nothing yet (the head waits in the writer), `write_eof` sends head and body."""

    def __init__(self, status: int, fields: dict[str, str], body: bytes) -> None:
        super().__init__(status=status)
        self.body = body
        self.fields = fields
        """The header fields as given, Server and Content-Type included; the rest
        (Content-Length, Date, Connection) are added when the head is framed."""

    @property
    def headers(self) -> CIMultiDictProxy[str]:  # type: ignore[override]
        """A read-only view of the fields, for tests and logs: set them before."""
        return CIMultiDictProxy(CIMultiDict(self.fields))

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return self._payload_writer
        fields = self.fields
        fields["Content-Length"] = str(len(self.body))
        fields.setdefault("Content-Type", "application/octet-stream")
        fields["Date"] = rfc822_formatted_time()
        if self._keep_alive is None:
            self._keep_alive = request.keep_alive
        if not self._keep_alive:
            fields["Connection"] = "close"
        self._req = request
        self._payload_writer = writer = request.writer
        # The writer frames the head (and refuses a control character in a value,
        # as for any aiohttp answer); it goes out with the body in write_eof.
        await writer.write_headers(f"HTTP/1.1 {self.status} {self.reason}", fields)  # type: ignore[arg-type]
        return writer

    async def write_eof(self, data: bytes = b"") -> None:
        if self._eof_sent:
            return
        assert self._payload_writer is not None, "Response has not been started"
        await self._payload_writer.write_eof(self.body)
        self._eof_sent = True
        self._req = self._payload_writer = None


def plain_answer(request: web.BaseRequest, status: int) -> bool:
    """Whether `WholeResponse` can give this answer: HTTP/1.1, a status and a method
    whose answer carries a body."""
    return (
        request.version == (1, 1)
        and request.method not in EMPTY_BODY_METHODS
        and status >= 200
        and status not in NO_BODY_STATUS
    )
