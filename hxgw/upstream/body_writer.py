"""A request body written as it is produced, no faster than the upstream reads it.

An upload is not held whole: its bytes come from the client as they arrive, so
they go out the same way. The writer waits whenever the socket's buffer is past
its high-water mark (the transport's pause_writing, until resume_writing),
which is what slows a fast client down to the upstream's pace: the client's
bytes wait in aiohttp's bounded buffer, then in the kernel's, not in ours.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import Protocol


class BodyLengthError(ValueError):
    """A streamed body that did not match the length its head declared: a bug, never
    sent on, as the connection would be out of step with the upstream."""


class Target(Protocol):
    """What the writer needs of its connection."""

    transport: asyncio.Transport | None

    def body_failed(self, error: BaseException) -> None: ...


class BodyWriter:
    """The task writing one streamed body to a connection."""

    __slots__ = ("_drained", "_paused", "sent", "task")

    def __init__(
        self,
        target: Target,
        body: AsyncIterable[bytes],
        length: int | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._paused = False
        self._drained: asyncio.Future[None] | None = None
        self.sent = False
        """The whole body went out: only then may the connection carry another request."""
        self.task = loop.create_task(self._write(target, body, length, loop))

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def stop(self) -> None:
        """Stop writing (the exchange ended, or the upstream answered early)."""
        if not self.task.done() and self.task is not asyncio.current_task():
            self.task.cancel()

    async def _write(
        self,
        target: Target,
        body: AsyncIterable[bytes],
        length: int | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        left = length
        try:
            async for chunk in body:
                transport = target.transport
                if transport is None:
                    return  # the connection is gone, and has said why
                if left is not None:
                    # Never a byte past the Content-Length sent: the upstream would read
                    # it as the start of another request, one this client wrote.
                    left -= len(chunk)
                    if left < 0:
                        raise BodyLengthError("the body is longer than its Content-Length")
                    transport.write(chunk)
                elif chunk:  # an empty chunk would end a chunked body
                    transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
                while self._paused and target.transport is not None:
                    self._drained = loop.create_future()
                    await self._drained
            if left:  # the upstream would wait for the rest, for ever
                raise BodyLengthError("the body is shorter than its Content-Length")
            if length is None and target.transport is not None:
                target.transport.write(b"0\r\n\r\n")
            self.sent = True
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            # The body's own failure (its client left, sent too much, stalled): the
            # exchange ends with it, and the connection, out of step now, is closed.
            target.body_failed(exc)
