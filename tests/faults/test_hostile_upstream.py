"""An upstream that frames its answers badly or maliciously, against the gateway's client:
raw sockets on loopback, every byte as the test says."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from hxgw.upstream import UpstreamClient, UpstreamProtocolError
from tests.raw_upstream import OK_HEAD, post, read_request, reply, serving

BODY = b'{"ok":true}'


async def _request(client: UpstreamClient, server) -> tuple[int, dict[str, str], bytes]:
    response = await client.request(
        b"POST", server.origin, b"/v1/chat/completions", b"", [], b"{}", connect_timeout=2
    )
    body = await response.read(1 << 30)
    response.release()
    return response.status, dict(response.headers), body


async def test_a_body_longer_than_its_content_length_keeps_the_connection_out_of_the_pool():
    async def overlong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply(BODY) + b"EXTRA BYTES THE LENGTH DID NOT COVER")
        while True:  # the rest of the connection, if it is reused
            await read_request(reader)
            writer.write(reply(b'{"second":true}'))

    client = UpstreamClient()
    async with serving(overlong) as server:
        assert await post(client, server) == BODY
        assert await post(client, server) == BODY
        assert server.connections == 2  # the first connection was not reused
    client.close()


async def test_the_start_of_a_second_response_never_reaches_the_next_request():
    stale = b"HTTP/1.1 200 OK\r\nX-Stale: from-the-previous-exchange\r\nContent-Le"

    async def smuggling(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply(BODY) + stale)
        while True:
            await read_request(reader)
            writer.write(b"ngth: 2\r\n\r\n{}" + reply(b'{"fresh":true}'))

    client = UpstreamClient()
    async with serving(smuggling) as server:
        await _request(client, server)
        status, headers, body = await _request(client, server)
        assert (status, body) == (200, BODY)
        assert "X-Stale" not in headers
        assert server.connections == 2
    client.close()


async def test_a_response_head_over_64_kib_is_refused():
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(200):
            writer.write(b"X-Filler: " + b"a" * 1000 + b"\r\n")
            await writer.drain()
        await asyncio.sleep(10)

    client = UpstreamClient()
    async with serving(endless) as server:
        with pytest.raises(UpstreamProtocolError, match="head is over 65536 bytes"):
            await asyncio.wait_for(_request(client, server), 5)
    client.close()


async def test_more_than_128_header_fields_are_refused():
    async def crowded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        fields = b"".join(b"X-F%d: v\r\n" % i for i in range(200))
        writer.write(OK_HEAD + fields + b"Content-Length: 2\r\n\r\n{}")
        await writer.drain()

    client = UpstreamClient()
    async with serving(crowded) as server:
        with pytest.raises(UpstreamProtocolError, match="over 128 header fields"):
            await _request(client, server)
    client.close()


async def test_a_head_arriving_one_byte_at_a_time_is_read_whole():
    value = b"v" * 20_000

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        head = OK_HEAD + b"X-Long: " + value + b"\r\nContent-Length: 11\r\n\r\n"
        for i in range(0, len(head), 7):
            writer.write(head[i:i + 7])
            await writer.drain()
        writer.write(BODY)
        await writer.drain()

    client = UpstreamClient()
    async with serving(trickle) as server:
        status, headers, body = await _request(client, server)
    assert (status, body) == (200, BODY)
    assert headers["X-Long"] == value.decode()
    client.close()


@pytest.mark.parametrize("status", [600, 700, 999])
async def test_a_status_outside_100_to_599_is_refused(status: int):
    async def odd(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 %d Odd\r\nContent-Length: 2\r\n\r\n{}" % status)
        await writer.drain()

    client = UpstreamClient()
    async with serving(odd) as server:
        with pytest.raises(UpstreamProtocolError, match=f"status {status}"):
            await _request(client, server)
    client.close()


async def test_a_transfer_coding_other_than_chunked_is_refused():
    async def gzipped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        await writer.drain()

    client = UpstreamClient()
    async with serving(gzipped) as server:
        with pytest.raises(UpstreamProtocolError, match="'gzip,chunked' is not chunked"):
            await _request(client, server)
    client.close()


async def test_through_the_gateway_an_odd_status_is_a_502_that_says_why(start_gateway):
    async def odd(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 700 Odd\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    async with serving(odd) as server:
        gateway = await start_gateway(upstream_url=f"http://127.0.0.1:{server.origin.port}",
                                      routing={"routing": {"default_group": "solo",
                                                           "groups": {"solo": ["gamma"]}}})
        async with aiohttp.ClientSession() as client, client.post(
            gateway.url + "/v1/chat/completions", headers=gateway.auth,
            json={"messages": [{"role": "user", "content": "hi"}]},
        ) as resp:
            assert resp.status == 502
            error = (await resp.json())["error"]
    assert "status 700" in error["tried"][0]["error"]


@pytest.mark.parametrize("interim", [b"100 Continue", b"103 Early Hints\r\nLink: </a>"])
async def test_a_head_that_follows_an_interim_answer_in_pieces_is_read_whole(interim: bytes):
    """The interim answer and the start of the real head in one read, its end in the next."""
    head = reply(BODY)
    cut = head.index(b"\r\n\r\n") + 2

    async def split(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 " + interim + b"\r\n\r\n" + head[:cut])
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(head[cut:])
        await writer.drain()

    client = UpstreamClient()
    async with serving(split) as server:
        status, headers, body = await asyncio.wait_for(_request(client, server), 2)
    assert (status, body) == (200, BODY) and "Link" not in headers
    client.close()


async def test_many_interim_answers_in_one_read_are_all_skipped():
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 102 Processing\r\n\r\n" * 5000 + reply(BODY))
        await writer.drain()

    client = UpstreamClient()
    async with serving(chatty) as server:
        assert (await asyncio.wait_for(_request(client, server), 5))[2] == BODY
    client.close()


async def test_a_head_with_bare_lf_line_ends_is_refused_at_once():
    async def bare(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\nContent-Length: 11\n\n" + BODY)
        await writer.drain()
        await asyncio.sleep(10)

    client = UpstreamClient()
    async with serving(bare) as server:
        with pytest.raises(UpstreamProtocolError, match="invalid HTTP"):
            await asyncio.wait_for(_request(client, server), 2)
    client.close()
