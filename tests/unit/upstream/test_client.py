"""The proxied path's HTTP client against a raw loopback server that does exactly
what each test needs: keep-alive, close, chunking, resets, garbage, slowness."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from hxgw.upstream import (
    Origin,
    UpstreamClient,
    UpstreamConnectError,
    UpstreamConnectTimeout,
    UpstreamProtocolError,
)
from hxgw.upstream import pool as upstream_pool
from hxgw.upstream.admission import Gate
from tests.raw_upstream import (
    OK_HEAD,
    Handler,
    keep_alive,
    post,
    read_request,
    recording,
    reply,
    serving,
)


async def test_sequential_requests_share_one_keep_alive_connection() -> None:
    client = UpstreamClient()
    async with serving(keep_alive) as server:
        for _ in range(3):
            assert await post(client, server) == b'{"ok":true}'
        assert server.connections == 1
    client.close()


async def test_the_request_carries_path_host_length_and_the_given_headers() -> None:
    seen: list[bytes] = []
    client = UpstreamClient()
    async with serving(recording(seen)) as server:
        origin = Origin.from_url(f"http://127.0.0.1:{server.origin.port}/prefix/")
        response = await client.request(
            b"POST", origin, b"/v1/embeddings", b"Authorization: Bearer k\r\n",
            [b"X-Request-ID: r1\r\n"], b'{"input":"x"}', connect_timeout=2,
        )
        response.release()
        port = server.origin.port
    head, _, body = seen[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /prefix/v1/embeddings HTTP/1.1"
    assert f"Host: 127.0.0.1:{port}".encode() in lines
    assert b"Content-Length: 13" in lines
    assert b"Authorization: Bearer k" in lines and b"X-Request-ID: r1" in lines
    assert body == b'{"input":"x"}'
    client.close()


async def test_a_post_without_a_body_says_its_length_is_zero() -> None:
    # Without it some servers (Google's front end among them) answer 411 Length Required:
    # a cancel is a POST with no body.
    seen: list[bytes] = []
    client = UpstreamClient()
    async with serving(recording(seen)) as server:
        response = await client.request(
            b"POST", server.origin, b"/v1/batches/b1/cancel", b"", [], b"", connect_timeout=2
        )
        response.release()
    assert b"\r\nContent-Length: 0\r\n" in seen[0]
    client.close()


async def test_an_interim_answer_is_skipped_and_its_headers_stay_out_of_the_response() -> None:
    async def early_hints(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n")
        writer.write(reply(b'{"ok":true}'))
        await writer.drain()

    client = UpstreamClient()
    async with serving(early_hints) as server:
        response = await client.request(
            b"POST", server.origin, b"/v1/chat/completions", b"", [], b"{}", connect_timeout=2
        )
        assert response.status == 200
        assert "Link" not in response.headers
        assert await response.read(1 << 30) == b'{"ok":true}'
        response.release()
    client.close()


async def test_a_response_that_says_connection_close_is_not_reused() -> None:
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply(b"{}", b"Connection: close\r\n"))
        await writer.drain()

    client = UpstreamClient()
    async with serving(closing) as server:
        await post(client, server)
        await post(client, server)
        assert server.connections == 2
    client.close()


async def test_an_idle_connection_the_upstream_closed_is_retried_on_a_new_one() -> None:
    async def one_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply(b'{"n":1}'))  # keep-alive by default, yet it closes after
        await writer.drain()

    client = UpstreamClient()
    async with serving(one_then_hang_up) as server:
        assert await post(client, server) == b'{"n":1}'
        assert await post(client, server) == b'{"n":1}'
        assert server.connections == 2
    client.close()


async def test_a_request_a_reused_connection_lost_long_after_it_was_read_is_not_sent_again(
) -> None:
    # Lost well past a round trip, it was read and maybe run: sent again it would run (and
    # be billed) twice. The loopback's connect says what a round trip is here.
    requests: list[bytes] = []

    async def read_then_drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await read_request(reader))
        writer.write(reply(b'{"n":1}'))
        await writer.drain()
        requests.append(await read_request(reader))
        await asyncio.sleep(0.3)
        writer.transport.abort()

    await _the_second_fails_sent_once(read_then_drop, requests)


async def test_a_request_a_reused_connection_began_to_answer_is_not_sent_again() -> None:
    # Bytes of an answer show the upstream read the request: sent again, it would run
    # (and be billed) twice.
    requests: list[bytes] = []

    async def one_then_half_an_answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        requests.append(await read_request(reader))
        writer.write(reply(b'{"n":1}'))
        await writer.drain()
        requests.append(await read_request(reader))
        writer.write(b"HTTP/1.1 200")
        await writer.drain()
        writer.transport.abort()

    await _the_second_fails_sent_once(one_then_half_an_answer, requests)


async def _the_second_fails_sent_once(handler: Handler, requests: list[bytes]) -> None:
    """Two posts on one kept-alive connection to `handler`, which records each request it
    reads in `requests`: the second fails, and was sent once."""
    client = UpstreamClient()
    async with serving(handler) as server:
        assert await post(client, server) == b'{"n":1}'
        with pytest.raises(ConnectionError):
            await post(client, server)
        assert (len(requests), server.connections) == (2, 1)
    client.close()


async def test_a_retry_after_a_reused_connection_was_cut_holds_one_slot_not_two() -> None:
    async def one_then_cut_the_next(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        writer.write(reply(b'{"n":1}'))
        await writer.drain()
        await read_request(reader)  # read whole, then cut without an answer
        writer.transport.abort()

    client, gate = UpstreamClient(), Gate("u", 2, 10, 5.0)
    async with serving(one_then_cut_the_next) as server:
        for _ in range(4):
            await gate.enter()
            response = await client.request(b"POST", server.origin, b"/v1/chat/completions",
                                            b"", [], b"{}", connect_timeout=2, slot=gate)
            await response.read(1 << 30)
            response.release()
            # Before, the lost connection gave the slot back and the retry's did again.
            assert gate.in_use == 0
    client.close()


async def test_bytes_on_an_idle_connection_retire_it() -> None:
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(reply(b"{}"))
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")  # unasked for
            await writer.drain()

    client = UpstreamClient()
    async with serving(chatty) as server:
        assert await post(client, server) == b"{}"
        await asyncio.sleep(0.2)
        assert await post(client, server) == b"{}"
        assert server.connections == 2
    client.close()


async def test_a_connection_idle_past_the_keep_alive_limit_is_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(upstream_pool, "IDLE_KEEPALIVE", 0.1)
    monkeypatch.setattr(upstream_pool, "IDLE_SWEEP", 60)  # the sweep must not be what saves it
    client = UpstreamClient()
    async with serving(keep_alive) as server:
        assert await post(client, server) == b'{"ok":true}'
        await asyncio.sleep(0.2)
        assert await post(client, server) == b'{"ok":true}'
        assert server.connections == 2
    client.close()


async def test_idle_connections_are_closed_by_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_pool, "IDLE_KEEPALIVE", 0.1)
    monkeypatch.setattr(upstream_pool, "IDLE_SWEEP", 0.05)
    client = UpstreamClient()
    async with serving(keep_alive) as server:
        await asyncio.gather(*(post(client, server) for _ in range(3)))
        assert server.open == 3
        for _ in range(100):
            if server.open == 0:
                break
            await asyncio.sleep(0.02)
        assert server.open == 0
    client.close()


async def test_no_more_idle_connections_than_the_cap_are_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(upstream_pool, "MAX_IDLE", 2)
    client = UpstreamClient()
    async with serving(keep_alive) as server:
        await asyncio.gather(*(post(client, server) for _ in range(5)))
        for _ in range(100):  # the ones past the cap are closed as they come back
            if server.open == 2:
                break
            await asyncio.sleep(0.02)
        assert server.open == 2
    client.close()


async def test_a_new_connection_reset_before_any_answer_raises() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.transport.abort()

    client = UpstreamClient()
    async with serving(hang_up) as server:
        with pytest.raises(ConnectionResetError):
            await post(client, server)
        assert server.connections == 1
    client.close()


async def test_chunks_are_readable_as_they_arrive() -> None:
    release = asyncio.Event()

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        await writer.drain()
        await read_request(reader)

    client = UpstreamClient()
    async with serving(chunked) as server:
        response = await client.request(b"POST", server.origin, b"/", b"", [], b"{}", connect_timeout=2)
        assert await response.readany() == b"first"
        assert not response.at_eof()
        release.set()
        assert await response.readany() == b"second"
        assert await response.readany() == b""
        assert response.at_eof()
        response.release()
    client.close()


async def test_a_body_ended_by_closing_the_connection_is_complete() -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_HEAD + b"\r\npart one, ")
        await writer.drain()
        writer.write(b"part two")
        await writer.drain()

    client = UpstreamClient()
    async with serving(until_close) as server:
        assert await post(client, server) == b"part one, part two"
    client.close()


async def test_a_reset_in_the_middle_of_a_body_raises_on_read() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_HEAD + b"Content-Length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.transport.abort()

    client = UpstreamClient()
    async with serving(cut) as server:
        response = await client.request(b"POST", server.origin, b"/", b"", [], b"{}", connect_timeout=2)
        with pytest.raises(ConnectionResetError):
            while await response.readany():
                pass
        response.release()
    client.close()


async def test_a_chunked_body_cut_short_by_the_upstream_closing_raises_on_read() -> None:
    # Only a body without a length or chunks is ended by the close; a chunked one cut
    # before its last chunk is a broken answer, not a whole one.
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()

    client = UpstreamClient()
    async with serving(cut) as server:
        response = await client.request(b"POST", server.origin, b"/", b"", [], b"{}", connect_timeout=2)
        with pytest.raises(ConnectionResetError):
            await response.read(1 << 30)
        response.release()
    client.close()


async def test_garbage_instead_of_http_is_a_protocol_error() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    client = UpstreamClient()
    async with serving(garbage) as server:
        with pytest.raises(UpstreamProtocolError):
            await post(client, server)
    client.close()


async def test_a_fetched_document_leaves_its_connection_for_the_next_request() -> None:
    # The readiness probe fetches /v1/models every few seconds: each kept a socket open.
    client = UpstreamClient()
    async with serving(keep_alive) as server:
        for _ in range(3):
            status, body = await client.fetch(
                server.origin, b"/v1/models", b"", (), limit=1 << 20, connect_timeout=2
            )
            assert (status, body) == (200, b'{"ok":true}')
        assert server.connections == 1
    client.close()


async def test_a_connection_not_taken_in_time_is_a_connect_timeout_that_says_so() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # never accepted: once its queue is full, SYNs go unanswered
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    client = UpstreamClient()
    try:
        with pytest.raises(UpstreamConnectTimeout, match=r"no answer within 0\.3s"):
            await client.request(b"POST", Origin.from_url(f"http://127.0.0.1:{port}"),
                                 b"/v1/chat/completions", b"", [], b"{}", connect_timeout=0.3)
    finally:
        client.close()
        for sock in (*fillers, listener):
            sock.close()


async def test_a_refused_connection_is_a_connect_error() -> None:
    async with serving(keep_alive) as server:
        origin = server.origin
    client = UpstreamClient()
    with pytest.raises(UpstreamConnectError):
        await client.request(b"POST", origin, b"/", b"", [], b"{}", connect_timeout=2)
    client.close()


async def test_a_reader_that_falls_behind_stops_the_upstream_instead_of_buffering() -> None:
    size = 64 * 1024 * 1024
    sent = asyncio.Event()

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_HEAD + b"Content-Length: %d\r\n\r\n" % size)
        writer.write(b"x" * size)
        await writer.drain()
        sent.set()

    client = UpstreamClient()
    async with serving(flood) as server:
        response = await client.request(b"POST", server.origin, b"/", b"", [], b"{}", connect_timeout=2)
        await asyncio.sleep(0.5)
        assert not sent.is_set()  # 64 MiB cannot all be in flight: the client stopped reading
        total = 0
        while chunk := await response.readany():
            total += len(chunk)
        assert total == size
        response.release()
    client.close()


def test_an_origin_is_parsed_once_with_default_ports_and_base_path() -> None:
    plain = Origin.from_url("http://litellm.internal/")
    assert (plain.host, plain.port, plain.tls, plain.base_path) == ("litellm.internal", 80, False, b"")
    secure = Origin.from_url("https://user@api.example:8443/proxy")
    assert (secure.port, secure.tls, secure.base_path) == (8443, True, b"/proxy")
    assert secure.host_header == b"api.example:8443"
    with pytest.raises(ValueError):
        Origin.from_url("ftp://example")
