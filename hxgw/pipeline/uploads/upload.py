"""An upload on its way upstream: the form's bytes before its `model` field (held in
a spool), that field, and the rest, read from the client as the upstream takes it.

The body each candidate gets differs only in the `model` value, its upstream
id. The length follows from the client's: old length - old value + new value.
Without a client length (a chunked upload) the upstream gets it chunked too,
unless the whole form had arrived before it went.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from typing import IO

from hxgw.config import Model
from hxgw.config.body_limits import Family
from hxgw.pipeline.client_request import body_too_large
from hxgw.pipeline.exchange import Exchange
from hxgw.pipeline.uploads.multipart import ModelField

IN_MEMORY = 1024 * 1024
"""A spool holds this much in memory; past it, in a temporary file."""
READ_SIZE = 256 * 1024


class Spool:
    """The bytes of a form before its `model` field: in memory while few, then in an
    unnamed temporary file, which disappears when closed or when the process dies.
    (Writes are to the page cache, fast enough not to need a thread.)"""

    __slots__ = ("_file", "_memory", "size")

    def __init__(self) -> None:
        self._memory = bytearray()
        self._file: IO[bytes] | None = None
        self.size = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self._file is not None:
            self._file.write(data)
            return
        self._memory += data
        if len(self._memory) > IN_MEMORY:
            self._file = tempfile.TemporaryFile(prefix="hxgw-upload-")  # noqa: SIM115 (closed by close())
            self._file.write(self._memory)
            self._memory = bytearray()

    def chunks(self, start: int = 0) -> Iterator[bytes]:
        """What was written, from byte `start`, in pieces of at most READ_SIZE."""
        if self._file is None:
            for at in range(start, len(self._memory), READ_SIZE):
                yield bytes(self._memory[at : at + READ_SIZE])
            return
        self._file.flush()
        self._file.seek(start)
        while piece := self._file.read(READ_SIZE):
            yield piece

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._memory = bytearray()


class Upload:
    """One request's form: what was read of it, and the client it comes from."""

    __slots__ = (
        "boundary",
        "consumed",
        "exchange",
        "family",
        "first_at",
        "idle",
        "limit",
        "received",
        "rest",
        "spool",
        "value",
        "watch",
        "whole",
    )

    def __init__(
        self, exchange: Exchange, boundary: bytes, family: Family, limit: int, idle: float
    ) -> None:
        self.exchange, self.boundary, self.family = exchange, boundary, family
        self.limit, self.idle = limit, idle
        self.spool = Spool()
        self.value: bytes | None = None
        """The `model` value as the client sent it; None when the form has none."""
        self.rest = b""
        """What was read after that value and is not in the spool."""
        self.watch: ModelField | None = None
        """Reads what is taken straight from the client as it goes, for a second `model`
        field and the fields that steer LiteLLM: a 400 before they go on."""
        self.first_at = 0
        """Where the form's first boundary starts (after any preamble)."""
        self.received = 0
        self.whole = False
        """The client sent all of the body."""
        self.consumed = False
        """A candidate took bytes of the body straight from the client: they cannot be
        read again, so no other candidate may be tried. (While the whole form is held,
        any candidate can have it.)"""

    async def read(self) -> bytes:
        """The client's next bytes, within the family's limit; b"" at the end."""
        chunk = await self.exchange.read_some(self.idle)
        if not chunk:
            self.whole = True
            return chunk
        self.received += len(chunk)
        if self.received > self.limit:
            raise body_too_large(self.limit, family=self.family)
        return chunk

    async def unread(self) -> AsyncIterator[bytes]:
        """The rest of the client's bytes, as they arrive: taken straight from the
        client, they mark the upload `consumed`. Its end alone does not: a form that had
        all come by its `model` field (a small one, or one whose `model` came last) is
        still held whole, for the next candidate if this one fails."""
        while not self.whole:
            chunk = await self.read()
            if chunk:
                self.consumed = True
                if self.watch is not None:
                    self.watch.feed(chunk)
                yield chunk

    def for_model(self, model: Model) -> UploadBody:
        return UploadBody(self, model.upstream_model.encode())


class UploadBody:
    """The body one candidate gets: an async iterable of bytes, and its length (None
    when unknown until the end)."""

    __slots__ = ("_added", "_upload", "_value", "length", "on_sent")

    def __init__(self, upload: Upload, model_id: bytes) -> None:
        self._upload, self._value = upload, model_id
        self._added = b""
        if upload.value is None:
            # No model field (the group came by header): one goes first, as the upstream
            # wants one, and the preamble (which RFC 2046 says to ignore) is dropped.
            self._added = b'--%s\r\nContent-Disposition: form-data; name="model"\r\n\r\n%s\r\n' % (
                upload.boundary,
                model_id,
            )
        self.on_sent: Callable[[], None] | None = None
        """Called once the last byte has been handed to the connection."""
        declared = upload.exchange.declared_length
        self.length: int | None = None
        if upload.value is not None and (declared is not None or upload.whole):
            total = upload.received if declared is None else declared
            self.length = total - len(upload.value) + len(model_id)
        elif upload.value is None:
            self.length = upload.received - upload.first_at + len(self._added)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[bytes]:
        upload = self._upload
        if upload.value is None:
            # The form had ended before any of it went: it is all in the spool.
            yield self._added
            for chunk in upload.spool.chunks(upload.first_at):
                yield chunk
        else:
            for chunk in upload.spool.chunks():
                yield chunk
            yield self._value + upload.rest
            async for chunk in upload.unread():
                yield chunk
        if self.on_sent is not None:
            self.on_sent()
