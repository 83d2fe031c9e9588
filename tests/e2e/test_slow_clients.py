"""Slow and greedy clients: a body that never finishes arriving, and one address
opening more connections than its share."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp

from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import wait_for


async def test_a_body_trickling_in_past_the_body_timeout_gets_408(start_gateway: StartGateway):
    gateway = await start_gateway(gateway={"limits": {"body_timeout": 1.5,
                                                      "client_idle_timeout": 10}})
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                 b"Content-Type: application/json\r\nAuthorization: Bearer "
                 + gateway.key.encode() + b"\r\n\r\n")

    async def trickle() -> None:  # a byte every 0.1 s: never idle, never done
        with contextlib.suppress(ConnectionError):
            for _ in range(40):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.1)

    sending = asyncio.create_task(trickle())
    answer = await asyncio.wait_for(reader.read(65536), 10)
    sending.cancel()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"408"
    assert "did not arrive within 1.5s" in json.loads(body)["error"]["message"]


async def test_connections_past_the_per_address_cap_are_refused_and_logged_once(
    start_gateway: StartGateway,
):
    gateway = await start_gateway(gateway={"limits": {"connections_per_address": 3}})
    held = [await asyncio.open_connection("127.0.0.1", gateway.port) for _ in range(3)]
    await asyncio.sleep(0.2)
    for _ in range(2):
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed at once
        writer.close()
    await wait_for(lambda: "too many connections from one address" in gateway.logs())
    assert gateway.logs().count("too many connections from one address") == 1
    held[0][1].close()
    await asyncio.sleep(0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(100), 5)).startswith(b"HTTP/1.1 200")
    writer.close()
    for _, other in held[1:]:
        other.close()


async def test_a_trusted_proxy_is_not_held_to_the_per_address_cap(start_gateway: StartGateway):
    gateway = await start_gateway(gateway={"limits": {"connections_per_address": 2},
                                           "auth": {"trusted_proxies": ["127.0.0.1"]}})
    held = [await asyncio.open_connection("127.0.0.1", gateway.port) for _ in range(4)]
    reader, writer = held[-1]
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(100), 5)).startswith(b"HTTP/1.1 200")
    for _, other in held:
        other.close()


async def test_a_client_that_stops_reading_lets_go_of_its_upstream_slot_after_the_total_timeout(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    client: aiohttp.ClientSession
):
    # One request at a time upstream: the stalled reader must not hold it past its time.
    fake, url = upstream
    gateway = await start_gateway(gateway={
        "timeouts": {"connect": 2, "first_byte": 5, "idle": 5, "total": 2},
        "upstreams": {"default": {"url": url, "max_concurrent": 1, "queue_timeout": 1}}})
    fake.behave("m-alpha", stream_bytes=200 * 1024 * 1024)
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    body = json.dumps({"model": "alpha", "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                 + gateway.key.encode() + b"\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    try:
        await reader.readuntil(b"\r\n\r\n")  # its head, then it reads no more
        await wait_for(lambda: "outcome=client_stalled" in gateway.logs(), timeout=15)
    finally:
        writer.close()
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={"model": "alpha", "messages": [{"role": "user",
                                                                 "content": "hi"}]}) as resp:
        assert resp.status == 200
