"""A streamed request body (an upload): framed chunked or by length, written no faster
than the upstream reads it, stopped by an early error answer, ended by its own failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hxgw.upstream import UpstreamClient
from hxgw.upstream.admission import Gate
from hxgw.upstream.body_writer import BodyLengthError
from tests.fixtures import wait_for
from tests.raw_upstream import Server, keep_alive, post, read_request, reply, serving

PIECE = b"\x00" * 65536


async def pieces(count: int, produced: list[int]) -> AsyncIterator[bytes]:
    for _ in range(count):
        produced[0] += 1
        yield PIECE


async def upload(client: UpstreamClient, server: Server, body: AsyncIterator[bytes],
                 length: int | None) -> tuple[int, bytes]:
    response = await client.upload(server.origin, b"/v1/audio/transcriptions", b"", [], body,
                                   length, connect_timeout=2)
    data = await response.read(1 << 20)
    response.release()
    return response.status, data


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        body += (await reader.readexactly(size + 2))[:-2]
        if not size:
            return body


async def test_a_body_of_unknown_length_goes_chunked_and_arrives_whole() -> None:
    seen: list[bytes] = []

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        seen.append(await read_chunked(reader))
        writer.write(reply(b"{}"))
        await writer.drain()

    client = UpstreamClient()
    async with serving(chunked) as server:
        assert await upload(client, server, pieces(3, [0]), None) == (200, b"{}")
    assert b"Transfer-Encoding: chunked\r\n" in seen[0] and seen[1] == PIECE * 3
    client.close()


async def test_a_body_of_known_length_is_sent_with_it_and_the_connection_kept() -> None:
    async def sized(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader)
            assert request.endswith(PIECE * 2) and b"Content-Length: 131072" in request
            writer.write(reply(b"{}"))
            await writer.drain()

    client = UpstreamClient()
    async with serving(sized) as server:
        for _ in range(2):
            assert await upload(client, server, pieces(2, [0]), 2 * len(PIECE)) == (200, b"{}")
        # Each upload takes a new connection (a stale one cannot be found out in time);
        # a finished one is still kept for the requests with bytes bodies.
        assert server.connections == 2
    client.close()


async def test_the_body_goes_no_faster_than_the_upstream_reads_it() -> None:
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await release.wait()  # reads nothing of the body meanwhile

    produced = [0]
    client = UpstreamClient()
    async with serving(slow) as server:
        task = asyncio.create_task(upload(client, server, pieces(2048, produced), None))
        # Wait until the writer stops asking for more; unpaced, it would take all 128 MiB.
        last = -1
        while produced[0] != last:
            last = produced[0]
            await asyncio.sleep(0.3)
        assert produced[0] * len(PIECE) < 32 * 1024 * 1024
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
    client.close()


async def test_an_early_error_answer_stops_the_body_and_the_connection_is_closed() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        error = b'{"error":{"message":"too large"}}'
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(error), error))
        await writer.drain()
        await asyncio.sleep(3600)  # and never reads the body

    produced = [0]
    client = UpstreamClient()
    async with serving(refuse) as server:
        status, data = await asyncio.wait_for(
            upload(client, server, pieces(4096, produced), 4096 * len(PIECE)), timeout=10)
        assert (status, data) == (413, b'{"error":{"message":"too large"}}')
        assert produced[0] < 4096
    client.close()


async def test_a_failing_body_ends_the_exchange_with_its_own_error() -> None:
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    async def breaks() -> AsyncIterator[bytes]:
        yield PIECE
        raise ValueError("the client left")

    client = UpstreamClient()
    async with serving(hold) as server:
        with pytest.raises(ValueError, match="the client left"):
            await asyncio.wait_for(upload(client, server, breaks(), None), timeout=10)
    client.close()


async def test_an_upload_given_up_on_before_its_answer_gives_its_slot_back() -> None:
    # The gateway gives up on an upstream that does not answer in time: its connection,
    # and the slot that holds, must not stay with it.
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    client, gate = UpstreamClient(), Gate("u", 1, 10, 5.0)
    async with serving(hold) as server:
        await gate.enter()
        sending = client.upload(server.origin, b"/v1/audio/transcriptions", b"", [],
                                pieces(2, [0]), 2 * len(PIECE), connect_timeout=2, slot=gate)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sending, timeout=0.5)
        await wait_for(lambda: gate.in_use == 0)
    client.close()


async def test_a_connection_an_early_answer_cut_the_upload_on_is_not_reused() -> None:
    # The upstream still waits for the rest of that body: a request sent on it would be
    # read as the body's bytes.
    async def refuse_then_read_the_body(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if b"Content-Length: 131072" in head:
            writer.write(reply(b'{"error":{}}').replace(b"200 OK", b"413 Payload Too Large"))
            await writer.drain()
            await reader.readexactly(2 * len(PIECE))
        else:
            await reader.readexactly(2)  # {}
            writer.write(reply(b'{"fresh":true}'))
        while True:
            await writer.drain()
            await read_request(reader)
            writer.write(reply(b'{"fresh":true}'))

    async def one_piece_then_the_client_stalls() -> AsyncIterator[bytes]:
        yield PIECE
        await asyncio.Event().wait()
        yield PIECE

    client = UpstreamClient()
    async with serving(refuse_then_read_the_body) as server:
        body = one_piece_then_the_client_stalls()
        assert (await upload(client, server, body, 2 * len(PIECE)))[0] == 413
        assert await asyncio.wait_for(post(client, server), timeout=10) == b'{"fresh":true}'
    client.close()


async def test_an_upload_sent_whole_leaves_its_connection_for_the_next_request() -> None:
    client = UpstreamClient()
    async with serving(keep_alive) as server:
        ok = b'{"ok":true}'
        assert await upload(client, server, pieces(2, [0]), 2 * len(PIECE)) == (200, ok)
        assert await post(client, server) == ok
        assert server.connections == 1
    client.close()


async def test_an_empty_piece_of_a_body_of_unknown_length_does_not_end_it() -> None:
    # Framed chunked, an empty chunk is the body's end: the rest would be read as the
    # next request.
    seen: list[bytes] = []

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        seen.append(await read_chunked(reader))
        writer.write(reply(b"{}"))
        await writer.drain()

    async def with_an_empty_piece() -> AsyncIterator[bytes]:
        yield b"first,"
        yield b""
        yield b"second"

    client = UpstreamClient()
    async with serving(chunked) as server:
        assert await upload(client, server, with_an_empty_piece(), None) == (200, b"{}")
    assert seen == [b"first,second"]
    client.close()


async def test_a_body_longer_than_its_length_ends_the_exchange_and_sends_none_of_the_excess(
) -> None:
    # A byte past the Content-Length would be read upstream as another request.
    received = bytearray()

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.extend(data)

    client = UpstreamClient()
    async with serving(record) as server:
        with pytest.raises(BodyLengthError, match="longer"):
            await asyncio.wait_for(upload(client, server, pieces(2, [0]), len(PIECE)), timeout=10)
        await wait_for(lambda: server.open == 0)
    assert received.endswith(PIECE) and received.count(PIECE) == 1
    client.close()


async def test_a_body_shorter_than_its_length_ends_the_exchange() -> None:
    # Else the upstream would wait for the rest, for ever, and the request with it.
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    client = UpstreamClient()
    async with serving(hold) as server:
        with pytest.raises(BodyLengthError, match="shorter"):
            await asyncio.wait_for(upload(client, server, pieces(1, [0]), 2 * len(PIECE)),
                                   timeout=10)
    client.close()
