"""Decisions and corrections on their way to Redis, sent together.

Every reservation asked for in one turn of the event loop goes in one batch: per
key, one EVALSHA of `redis_scripts.BATCH` with that key's operations in the order
they were asked for (so a correction made before a decision is counted before
it), the keys' calls written together on one connection. Batches are pipelined:
the next goes out without waiting for the one before (Redis runs them in the
order they were written), up to `max_in_flight` at once; beyond that, what arrives
waits and goes in one batch when a reply comes. One round trip thus serves
several requests instead of two round trips per request (a reservation and its
correction), each of which cost more of the gateway's CPU than the rest of the
request's limits, and a request waits for one round trip, not for those before
it (docs/performance.md).

Corrections (reconciles) wait for no answer: they go with the next batch, or
after `linger` seconds (5 ms), or at once when `max_waiting` wait; `close()`
sends what waits. When a batch fails (Redis unreachable, too slow, or an error
reply) every operation in it and every one waiting for the next fails with it:
the decisions' callers get the error and apply `fail_open`; the corrections are
sent again with the next connection, to apply only where their reservation is still
open (`C`: a stalled Redis ran them when it resumed, a paused one dropped them), and
the batch's own reservations, which a stalled Redis may run when it resumes, are
released with it. `on_failure` and `on_success` tell the limiter, once per batch;
`on_abandoned` tells it of a decision whose caller stopped waiting for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from hxgw.keys.redis_lines import released, resent
from hxgw.keys.redis_scripts import BATCH, BATCH_SHA, script_texts
from hxgw.keys.resp import Arg, Reply, ReplyError, RespConnection

FAILURES = (OSError, TimeoutError, ReplyError)
"""What a batch can fail with: a connection refused or lost, no answer in time, an
error reply. (ConnectionError is an OSError.)"""
MAX_UNSENT = 100_000
"""The most corrections kept for the next connection while Redis is away (the oldest go)."""
MOST_IN_BATCH = 2000
"""The most operations in one batch: Redis runs one in some 20 µs, and what an outage kept
(up to MAX_UNSENT) sent at once had taken longer than `timeout`, failed, and been sent
again, again and again, while it blocked Redis for every gateway."""
RECONNECT_AFTER = 1.0
"""Seconds before corrections kept from a failed batch try a new connection."""


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
        on_abandoned: Callable[[str, str, bytes], None],
        linger: float = 0.005,
        max_waiting: int = 256,
        max_in_flight: int = 4,
    ) -> None:
        self.url, self.header, self.prefix, self.timeout = url, header, prefix, timeout
        self.linger, self.max_waiting, self.max_in_flight = linger, max_waiting, max_in_flight
        self._on_failure, self._on_success = on_failure, on_success
        self._on_abandoned = on_abandoned
        self._waiting: list[_Operation] = []
        self._answers_wanted = 0
        self._in_flight: set[asyncio.Task[None]] = set()
        self._flush_soon = False
        self._timer: asyncio.TimerHandle | None = None
        self._connection: RespConnection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._closing = False

    def decide(self, key_name: str, line: str) -> asyncio.Future[bytes]:
        """Queue a reservation; its future gets the script's line for it."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes] = loop.create_future()
        self._waiting.append(_Operation(key_name, line, answer))
        self._answers_wanted += 1
        if not self._flush_soon:
            # After this turn of the loop: every reservation asked for in the
            # meantime goes with this one.
            self._flush_soon = True
            loop.call_soon(self._flush)
        return answer

    def correct(self, key_name: str, line: str) -> None:
        """Queue a correction, sent with the next batch or within `linger` seconds."""
        self._waiting.append(_Operation(key_name, line, None))
        if self._connection is None and self._timer is not None:
            return  # Redis is away: they wait for the reconnection's turn
        if len(self._waiting) >= self.max_waiting and not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)
        elif self._timer is None and not self._flush_soon:
            self._timer = asyncio.get_running_loop().call_later(self.linger, self._flush)

    async def open(self) -> None:
        """Connect now rather than with the first batch: a failure is told `on_failure`,
        as a batch's would be."""
        if self._connection is None and self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
        if self._connecting is not None:
            await self._connecting

    async def close(self) -> None:
        """Send what waits, wait for every answer, then close the connection (what cannot
        be sent then is dropped)."""
        self._closing = True
        while self._waiting or self._in_flight or self._connecting:
            self._flush(everything=True)
            pending = [*self._in_flight, *([self._connecting] if self._connecting else [])]
            if pending:
                await asyncio.wait(pending)
        if self._timer is not None:
            self._timer.cancel()
        if self._connection is not None:
            self._connection.close()

    def _flush(self, *, everything: bool = False) -> None:
        self._flush_soon = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._waiting or (len(self._in_flight) >= self.max_in_flight and not everything):
            return  # a reply will flush what waits
        connection = self._connection
        if connection is None or connection.closed:
            if self._connecting is None:
                self._connecting = asyncio.get_running_loop().create_task(self._connect())
            return
        batch, self._waiting = self._waiting[:MOST_IN_BATCH], self._waiting[MOST_IN_BATCH:]
        # The rest (after an outage: its corrections) goes when this one is answered.
        self._answers_wanted = sum(op.answer is not None for op in self._waiting)
        groups: dict[str, list[_Operation]] = {}
        for operation in batch:
            groups.setdefault(operation.key_name, []).append(operation)
        commands = [self._command(name, ops) for name, ops in groups.items()]
        try:
            replies = connection.send(commands)
        except ConnectionError as exc:
            self._fail(batch, exc)
            return
        task = asyncio.get_running_loop().create_task(
            self._answer(batch, list(groups.values()), commands, replies)
        )
        self._in_flight.add(task)

    async def _connect(self) -> None:
        connection = None
        try:
            async with asyncio.timeout(self.timeout):
                connection = await RespConnection.open(self.url)
                # Loaded with every new connection (a restarted Redis has lost it), so
                # that NOSCRIPT is the exception, not the first answer.
                await connection.send([("SCRIPT", "LOAD", BATCH)])[0]
            self._connection = connection
        except Exception as exc:
            # Not only FAILURES: a host name that cannot be encoded (a label over 63
            # characters) raises UnicodeError; the decisions waiting must hear of it too,
            # as the failure their callers handle.
            if connection is not None:
                connection.close()
            failure = exc if isinstance(exc, FAILURES) else ConnectionError(f"{exc!r}")
            self._fail([], failure)
        finally:
            self._connecting = None
        if self._waiting and self._connection is not None:
            self._flush()

    async def _answer(
        self,
        batch: list[_Operation],
        groups: list[list[_Operation]],
        commands: list[tuple[Arg, ...]],
        replies: list[asyncio.Future[Reply]],
    ) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                texts = await script_texts(self._connection, commands, replies)
            lines = [text.split(b"\n") for text in texts]
            if [len(ops) for ops in groups] != [len(found) for found in lines]:
                raise ReplyError(f"the limits script answered {texts!r}")
        except FAILURES as exc:
            self._fail(batch, exc)
            return
        finally:
            self._in_flight.discard(asyncio.current_task())
        self._on_success()
        for ops, found in zip(groups, lines, strict=True):
            for operation, line in zip(ops, found, strict=True):
                answer = operation.answer
                if answer is None:
                    continue
                if not answer.done():
                    answer.set_result(line)
                elif answer.cancelled():  # its request left while the batch was out
                    self._on_abandoned(operation.key_name, operation.line, line)
        if self._waiting and (self._answers_wanted or len(self._waiting) >= self.max_waiting):
            self._flush()
        elif self._waiting and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.linger, self._flush)

    def _command(self, key_name: str, ops: list[_Operation]) -> tuple[Arg, ...]:
        # The braces make the key's name the hash tag: its keys share a cluster slot.
        base = f"{self.prefix}:{{{key_name}}}:"
        keys = (base + "log", base + "tok", base + "open", base + "st", base + "gone")
        sent = repr(time.time())
        return (
            "EVALSHA",
            BATCH_SHA,
            len(keys),
            *keys,
            *self.header,
            sent,
            *(op.line for op in ops),
        )

    def _fail(self, batch: list[_Operation], exc: BaseException) -> None:
        if self._connection is not None:
            # Its replies can no longer be trusted to match: start afresh next time.
            self._connection.close()
            self._connection = None
        # Those waiting for the next batch would only try the same Redis again at once;
        # but corrections never sent have not run: they wait for the next connection (a
        # dropped one holds a request's slot, and charges its estimate, until its lease
        # ends). Those of the failed batch may have run, or not (a paused Redis drops
        # what a closed connection had sent): sent again, for a reservation still open.
        # Its reservations may have run too (a Redis that stalls runs what it had read
        # when it resumes), for requests told it failed: each is released, if it is open.
        released = [_release(op) for op in batch if op.answer is not None]
        again = [
            _Operation(op.key_name, line, None)
            for op in batch
            if op.answer is None and (line := resent(op.line)) is not None
        ]
        kept = [op for op in self._waiting if op.answer is None]
        unsent = [] if self._closing else [*released, *again, *kept]
        failed = batch + [op for op in self._waiting if op.answer is not None]
        self._waiting, self._answers_wanted = unsent[-MAX_UNSENT:], 0
        if self._waiting and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(RECONNECT_AFTER, self._flush)
        self._on_failure(exc)
        for operation in failed:
            if operation.answer is not None and not operation.answer.done():
                operation.answer.set_exception(exc)


def _release(reservation: _Operation) -> _Operation:
    """The correction that lets go of `reservation` (`r now id ...`) if Redis made it."""
    return _Operation(reservation.key_name, released(reservation.line), None)
