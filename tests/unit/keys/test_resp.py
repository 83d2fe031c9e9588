"""The limiter's lean Redis connection: URLs, replies however they are cut, errors,
the handshake, and a lost connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hxgw.keys.resp import ReplyError, RespConnection, Target, encode, target
from tests.redis_server import RedisServer


def test_urls_name_host_port_database_and_credentials() -> None:
    assert target("redis://cache:6380/2") == Target(host="cache", port=6380, db=2)
    assert target("rediss://u:p%40ss@cache/0") == Target(
        host="cache", tls=True, username="u", password="p@ss"
    )
    assert target("redis://:secret@127.0.0.1") == Target(host="127.0.0.1", password="secret")
    assert target("unix:///run/redis.sock?db=3&password=pw") == Target(
        path="/run/redis.sock", db=3, password="pw"
    )


def test_commands_are_arrays_of_bulk_strings() -> None:
    assert encode(("GET", b"k", 12)) == b"*3\r\n$3\r\nGET\r\n$1\r\nk\r\n$2\r\n12\r\n"


class _Transport(asyncio.Transport):
    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def close(self) -> None:
        pass


async def test_replies_cut_anywhere_answer_in_order() -> None:
    connection = RespConnection()
    connection.connection_made(_Transport())
    answers = connection.send([("A",), ("B",), ("C",), ("D",), ("E",)])
    stream = b"$5\r\nhe\r\no\r\n+OK\r\n:42\r\n-NOSCRIPT No matching script\r\n$-1\r\n"
    for i in range(len(stream)):
        connection.data_received(stream[i : i + 1])
    assert [await answer for answer in answers[:3]] == [b"he\r\no", b"OK", 42]
    with pytest.raises(ReplyError, match="NOSCRIPT"):
        await answers[3]
    assert await answers[4] is None


async def test_a_lost_connection_fails_every_command_waiting() -> None:
    connection = RespConnection()
    connection.connection_made(_Transport())
    answers = connection.send([("A",), ("B",)])
    connection.connection_lost(None)
    for answer in answers:
        with pytest.raises(ConnectionError):
            await answer
    assert connection.closed
    with pytest.raises(ConnectionError):
        connection.send([("C",)])


async def test_an_unknown_reply_closes_the_connection() -> None:
    connection = RespConnection()
    connection.connection_made(_Transport())
    (answer,) = connection.send([("A",)])
    connection.data_received(b"*1\r\n$1\r\nx\r\n")
    with pytest.raises(ConnectionError, match="unreadable"):
        await answer
    assert connection.closed


async def test_the_database_of_the_url_is_selected(redis_server: RedisServer) -> None:
    base = f"redis://127.0.0.1:{redis_server.port}"
    three = await RespConnection.open(base + "/3")
    await three.send([("SET", "here", "1")])[0]
    zero = await RespConnection.open(base + "/0")
    assert await zero.send([("EXISTS", "here")])[0] == 0
    assert await three.send([("EXISTS", "here")])[0] == 1
    three.close()
    zero.close()


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A server that answers +OK to anything and keeps what it was sent."""
    received: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while data := await reader.read(4096):
            received.append(data)
            writer.write(b"+OK\r\n" * data.count(b"*"))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], received
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_the_password_and_user_are_sent_first(recorder: tuple[int, list[bytes]]) -> None:
    port, received = recorder
    connection = await RespConnection.open(f"redis://app:pw@127.0.0.1:{port}/1")
    connection.close()
    sent = b"".join(received)
    assert sent == encode(("AUTH", "app", "pw")) + encode(("SELECT", 1))
