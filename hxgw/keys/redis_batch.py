"""Decisions and corrections on their way to Redis, sent together.

Every reservation asked for in one turn of the event loop goes in one round trip:
per key, one EVALSHA of `redis_scripts.BATCH` with that key's operations in the
order they were asked for (so a correction made before a decision is counted
before it), the keys' calls written together on one connection. One batch is in
flight at a time; what arrives meanwhile goes in the next, so the busier the
gateway, the more a round trip serves. With 16 requests at once that is one
round trip for several requests instead of two per request (a reservation and
its correction), each of which cost more of the gateway's CPU than the rest of
the request's limits (docs/performance.md).

Corrections (reconciles) wait for no answer: they go with the next batch, or
after `linger` seconds (5 ms), or at once when `max_waiting` wait; `close()`
sends what waits. When a batch fails (Redis unreachable, too slow, or an error
reply) every operation in it and every one waiting for the next fails with it:
the decisions' callers get the error and apply `fail_open`; the corrections are
dropped (each reservation's lease then expires in Redis and charges its
estimate). `on_failure` and `on_success` tell the limiter, once per batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from hxgw.keys.redis_scripts import BATCH, BATCH_SHA
from hxgw.keys.resp import Arg, ReplyError, RespConnection

FAILURES = (OSError, TimeoutError, ReplyError)
"""What a batch can fail with: a connection refused or lost, no answer in time, an
error reply. (ConnectionError is an OSError.)"""


@dataclass(slots=True)
class _Operation:
    key_name: str
    line: str
    answer: asyncio.Future[bytes] | None
    """None for a correction: nobody waits for it."""


class Batches:
    def __init__(
        self,
        url: str,
        header: tuple[Arg, ...],
        *,
        prefix: str,
        timeout: float,
        on_failure: Callable[[BaseException], None],
        on_success: Callable[[], None],
        linger: float = 0.005,
        max_waiting: int = 256,
    ) -> None:
        self.url, self.header, self.prefix, self.timeout = url, header, prefix, timeout
        self.linger, self.max_waiting = linger, max_waiting
        self._on_failure, self._on_success = on_failure, on_success
        self._waiting: list[_Operation] = []
        self._answers_wanted = 0
        self._sending: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._connection: RespConnection | None = None

    def decide(self, key_name: str, line: str) -> asyncio.Future[bytes]:
        """Queue a reservation; its future gets the script's line for it."""
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Operation(key_name, line, answer))
        self._answers_wanted += 1
        if self._sending is None:
            self._start()
        return answer

    def correct(self, key_name: str, line: str) -> None:
        """Queue a correction, sent with the next batch or within `linger` seconds."""
        self._waiting.append(_Operation(key_name, line, None))
        if len(self._waiting) >= self.max_waiting and self._sending is None:
            self._start()
        elif self._timer is None and self._sending is None:
            self._timer = asyncio.get_running_loop().call_later(self.linger, self._start)

    async def close(self) -> None:
        """Send what waits, then close the connection."""
        while self._waiting or self._sending is not None:
            if self._sending is None:
                self._start()
            if self._sending is not None:
                await asyncio.shield(self._sending)
        if self._timer is not None:
            self._timer.cancel()
        if self._connection is not None:
            self._connection.close()

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sending is None:
            # Started now, it first runs after this turn of the loop: every
            # reservation asked for in the meantime goes with this batch.
            self._sending = asyncio.get_running_loop().create_task(self._send_waiting())

    async def _send_waiting(self) -> None:
        try:
            first = True
            # After the first batch, corrections alone wait for the timer or for more.
            while self._waiting and (
                first or self._answers_wanted or len(self._waiting) >= self.max_waiting
            ):
                first = False
                batch, self._waiting, self._answers_wanted = self._waiting, [], 0
                await self._send(batch)
        finally:
            self._sending = None
            if self._waiting and self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self.linger, self._start)

    async def _send(self, batch: list[_Operation]) -> None:
        groups: dict[str, list[_Operation]] = {}
        for operation in batch:
            groups.setdefault(operation.key_name, []).append(operation)
        try:
            async with asyncio.timeout(self.timeout):
                replies = await self._call(
                    [self._command(name, ops) for name, ops in groups.items()]
                )
        except FAILURES as exc:
            self._fail(batch, exc)
            return
        self._on_success()
        for ops, reply in zip(groups.values(), replies, strict=True):
            for operation, line in zip(ops, reply.split(b"\n"), strict=True):
                answer = operation.answer
                if answer is not None and not answer.done():
                    answer.set_result(line)

    async def _call(self, commands: list[tuple[Arg, ...]]) -> list[bytes]:
        """The scripts' replies; the script is loaded first if the server does not have it
        (a restarted Redis): NOSCRIPT means that call did not run, so it is sent again."""
        connection = self._connection
        if connection is None or connection.closed:
            connection = self._connection = await RespConnection.open(self.url)
        results: list[bytes | ReplyError] = []
        for answer in connection.send(commands):
            try:
                results.append(_bytes(await answer))
            except ReplyError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                results.append(exc)
        if any(isinstance(result, ReplyError) for result in results):
            await connection.send([("SCRIPT", "LOAD", BATCH)])[0]
            again = [c for c, r in zip(commands, results, strict=True) if isinstance(r, ReplyError)]
            replies = iter(connection.send(again))
            results = [_bytes(await next(replies)) if isinstance(r, ReplyError) else r
                       for r in results]  # fmt: skip
        return [result for result in results if isinstance(result, bytes)]

    def _command(self, key_name: str, ops: list[_Operation]) -> tuple[Arg, ...]:
        # The braces make the key's name the hash tag: its four keys share a cluster slot.
        base = f"{self.prefix}:{{{key_name}}}:"
        keys = (base + "log", base + "tok", base + "open", base + "st")
        return ("EVALSHA", BATCH_SHA, 4, *keys, *self.header, *(op.line for op in ops))

    def _fail(self, batch: list[_Operation], exc: BaseException) -> None:
        if self._connection is not None:
            # Its replies can no longer be trusted to match: start afresh next time.
            self._connection.close()
            self._connection = None
        # Those waiting for the next batch would only try the same Redis again at once.
        failed, self._waiting, self._answers_wanted = batch + self._waiting, [], 0
        self._on_failure(exc)
        for operation in failed:
            if operation.answer is not None and not operation.answer.done():
                operation.answer.set_exception(exc)


def _bytes(reply: object) -> bytes:
    if not isinstance(reply, bytes):
        raise ReplyError(f"unexpected reply from the limits script: {reply!r}")
    return reply
