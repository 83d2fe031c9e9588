"""A lean Redis connection for the limiter: commands pipelined on one socket, their
replies matched in order.

Why not redis-py's asyncio client: a round trip through it cost about 85 µs of the
gateway's CPU (its pool, its lock, a stream reader awaited once per line of the
reply), this one about 20 µs; the limiter makes one per batch of decisions, and
they were most of what a key limited in Redis cost (docs/performance.md). It
speaks only what the limiter needs: RESP2 commands, and replies that are simple
strings, errors, integers or bulk strings (an array is a protocol error).

The URL forms are the config's: redis://[[user]:password@]host[:port][/db],
rediss:// (TLS, the server's certificate checked against the system's CAs) and
unix:///path.sock[?db=N&password=...].
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import parse_qs, unquote, urlsplit

Reply = bytes | int | None
Arg = bytes | str | int


class ReplyError(Exception):
    """An error reply (`-NOSCRIPT ...`): the command did not run."""


@dataclass(frozen=True, slots=True)
class Target:
    host: str = "localhost"
    port: int = 6379
    path: str | None = None
    """A unix socket's path, instead of host and port."""
    tls: bool = False
    username: str | None = None
    password: str | None = None
    db: int = 0


def target(url: str) -> Target:
    parts = urlsplit(url)
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    password = query.get("password") or (unquote(parts.password) if parts.password else None)
    username = unquote(parts.username) if parts.username else None
    if parts.scheme == "unix":
        return Target(
            path=parts.path, username=username, password=password, db=int(query.get("db", 0))
        )
    db = parts.path.lstrip("/") or query.get("db", "0")
    return Target(
        host=parts.hostname or "localhost",
        port=parts.port or 6379,
        tls=parts.scheme == "rediss",
        username=username,
        password=password,
        db=int(db),
    )


def encode(command: Sequence[Arg]) -> bytes:
    """One command as RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(command)]
    for arg in command:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RespConnection(asyncio.Protocol):
    """One connection to Redis. `send()` writes commands at once and returns a future
    per command; replies answer them in order. A lost connection fails every one
    waiting; the connection is then `closed` and a new one must be opened."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._waiting: deque[asyncio.Future[Reply]] = deque()
        self._buffer = bytearray()
        self.closed = False

    @classmethod
    async def open(cls, url: str) -> RespConnection:
        """Connect, authenticate and select the database (the caller bounds the time)."""
        where, loop = target(url), asyncio.get_running_loop()
        if where.path is not None:
            _, connection = await loop.create_unix_connection(cls, where.path)
        else:
            tls = ssl.create_default_context() if where.tls else None
            _, connection = await loop.create_connection(cls, where.host, where.port, ssl=tls)
        hello: list[Sequence[Arg]] = []
        if where.password is not None:
            hello.append(
                ("AUTH", where.username, where.password)
                if where.username
                else ("AUTH", where.password)
            )
        if where.db:
            hello.append(("SELECT", where.db))
        try:
            for answer in connection.send(hello):
                await answer
        except BaseException:
            connection.close()
            raise
        return connection

    def send(self, commands: Iterable[Sequence[Arg]]) -> list[asyncio.Future[Reply]]:
        """Write the commands in one go; each future gets its reply, or the error that
        lost the connection. Raises ConnectionError when the connection is closed."""
        if self.closed or self._transport is None:
            raise ConnectionError("the Redis connection is closed")
        loop = asyncio.get_running_loop()
        payload, answers = [], []
        for command in commands:
            payload.append(encode(command))
            answer: asyncio.Future[Reply] = loop.create_future()
            answers.append(answer)
        self._waiting.extend(answers)
        self._transport.write(b"".join(payload))
        return answers

    def close(self, why: str = "closed") -> None:
        if self._transport is not None:
            self._transport.close()
        self._lost(ConnectionError(f"the Redis connection was {why}"))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # a stream socket's

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(ConnectionError(f"the Redis connection was lost: {exc or 'closed'}"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while self._waiting:
            try:
                parsed = _parse(buffer, start)
            except ValueError as exc:  # not a reply we know: nothing after it can be trusted
                self.close(f"closed on an unreadable reply ({exc})")
                return
            if parsed is None:
                break
            reply, start = parsed
            answer = self._waiting.popleft()
            if answer.done():
                continue  # its caller gave up on it (a timeout)
            if isinstance(reply, ReplyError):
                answer.set_exception(reply)
            else:
                answer.set_result(reply)
        del buffer[:start]

    def _lost(self, error: Exception) -> None:
        self.closed = True
        while self._waiting:
            answer = self._waiting.popleft()
            if not answer.done():
                answer.set_exception(error)


async def ping(url: str) -> None:
    """Whether Redis answers, on a connection of its own (the caller bounds the time):
    raises OSError or ReplyError when it does not."""
    connection = await RespConnection.open(url)
    try:
        (answer,) = connection.send([("PING",)])
        await answer
    finally:
        connection.close()


def _parse(buffer: bytearray, start: int) -> tuple[Reply | ReplyError, int] | None:
    """The reply at `start` and where the next one begins; None while it is incomplete."""
    end = buffer.find(b"\r\n", start)
    if end < 0:
        return None
    kind, line = buffer[start], bytes(buffer[start + 1 : end])
    if kind == ord("$"):
        size = int(line)
        if size < 0:
            return None, end + 2
        if len(buffer) < end + 2 + size + 2:
            return None
        return bytes(buffer[end + 2 : end + 2 + size]), end + 4 + size
    if kind == ord("+"):
        return line, end + 2
    if kind == ord(":"):
        return int(line), end + 2
    if kind == ord("-"):
        return ReplyError(line.decode(errors="replace")), end + 2
    raise ValueError(f"a reply of type {chr(kind)!r}")
