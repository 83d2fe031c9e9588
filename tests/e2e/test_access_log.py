"""Every request that got an answer leaves exactly one access line, whatever its status."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp

from tests.e2e.test_alert_metrics import _chat_as, _key_gateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, wait_for


def _access_lines(gateway: Gateway, pattern: str) -> list[str]:
    return [line for line in gateway.logs().splitlines() if re.search(pattern, line)]


async def _send_raw(gateway: Gateway, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    return answer


async def test_an_unknown_path_leaves_one_access_line_with_its_404(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.get(gateway.url + "/v1/no-such-route") as resp:
        assert resp.status == 404
    await wait_for(lambda: _access_lines(gateway, r"GET /v1/no-such-route status=404"))
    assert len(_access_lines(gateway, r"/v1/no-such-route")) == 1


async def test_a_wrong_method_leaves_one_access_line_with_its_405(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.delete(gateway.url + "/v1/chat/completions") as resp:
        assert resp.status == 405
    await wait_for(lambda: _access_lines(gateway, r"DELETE /v1/chat/completions status=405"))
    assert len(_access_lines(gateway, r"DELETE /v1/chat/completions")) == 1


async def test_an_operator_route_leaves_an_access_line(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.get(gateway.url + "/healthz") as resp:
        assert resp.status == 200
    await wait_for(lambda: _access_lines(gateway, r"GET /healthz status=200"))


async def test_a_refused_operator_route_logs_why_not_ok(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.get(gateway.url + "/status.json") as resp:
        assert resp.status == 401
    await wait_for(lambda: _access_lines(gateway, r"GET /status.json status=401 "))
    (line,) = _access_lines(gateway, r"GET /status.json status=401 ")
    assert "outcome=invalid_api_key" in line


async def test_an_answered_chat_s_access_line_says_the_tokens_it_used(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", content="one two three four")
    fake.behave("m-beta", content="one two three four")
    async with client.post(gateway.url + "/v1/chat/completions",
                           headers=gateway.auth | {"X-Request-ID": "tokens-used"},
                           json={"messages": [{"role": "user", "content": "hi"}]}) as resp:
        # Read whole: a client that leaves after the head is a client gone, billed by estimate.
        assert resp.status == 200 and (await resp.json())["usage"]["completion_tokens"] == 4
    await wait_for(lambda: _access_lines(gateway, r"status=200 .* request_id=tokens-used"))
    (line,) = _access_lines(gateway, r"status=200 .* request_id=tokens-used")
    assert " prompt_tokens=3 completion_tokens=4 failovers=0 " in line


async def test_a_refused_request_s_access_line_names_no_tokens(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.post(gateway.url + "/v1/chat/completions", json={}) as resp:
        assert resp.status == 401
    await wait_for(lambda: _access_lines(gateway, r"status=401"))
    assert "tokens=" not in _access_lines(gateway, r"status=401")[0]


async def test_a_malformed_request_leaves_an_access_line_with_its_400(gateway: Gateway):
    answer = await _send_raw(gateway, b"GARBAGE\r\n\r\n")
    assert answer.split(b" ")[1] == b"400"
    await wait_for(lambda: _access_lines(gateway, r"status=400 .*outcome=malformed"))
    assert len(_access_lines(gateway, r"outcome=malformed")) == 1


async def test_control_characters_in_a_path_reach_the_access_line_escaped(
    gateway: Gateway, client: aiohttp.ClientSession
):
    # A path's percent-escapes are decoded: raw, an ESC would drive the reader's terminal
    # and a NUL cut the line short for some tools.
    async with client.get(gateway.url + "/v1/x%1b%5B2J%00%7f",
                          headers=gateway.auth) as resp:
        assert resp.status == 404
    await wait_for(lambda: _access_lines(gateway, r"status=404"))
    (line,) = _access_lines(gateway, r"status=404")
    assert 'GET /v1/x\\x1b[2J\\x00\\x7f" status=404' in line
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", gateway.logs())


async def test_a_path_that_reads_like_more_fields_is_quoted_and_forges_none(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.get(gateway.url + "/bar%20status=200%20key=master%20outcome=ok") as resp:
        assert resp.status == 404
    await wait_for(lambda: _access_lines(gateway, r"status=404"))
    (line,) = _access_lines(gateway, r"status=404")
    assert '"GET /bar status=200 key=master outcome=ok" status=404' in line


async def test_a_flood_of_malformed_requests_from_one_address_is_logged_only_a_few_times(
    gateway: Gateway,
):
    for _ in range(30):
        assert (await _send_raw(gateway, b"GARBAGE\r\n\r\n")).split(b" ")[1] == b"400"
    await wait_for(lambda: len(_access_lines(gateway, r"outcome=malformed")) >= 10)
    await asyncio.sleep(0.3)
    assert len(_access_lines(gateway, r"outcome=malformed")) == 10


async def test_a_5xx_answer_s_access_line_is_a_warning(
    start_gateway, client: aiohttp.ClientSession, dead_port: int
):
    gateway = await start_gateway(upstream_url=f"http://127.0.0.1:{dead_port}")
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={"messages": [{"role": "user", "content": "hi"}]}) as resp:
        assert resp.status == 502
    await wait_for(lambda: _access_lines(gateway, r"POST /v1/chat/completions status=502 "))
    (line,) = _access_lines(gateway, r"POST /v1/chat/completions status=502 ")
    assert " warning POST " in line


async def test_a_key_s_429_access_line_stays_at_info(
    start_gateway, client: aiohttp.ClientSession, tmp_path: Path
):
    gateway, secret = await _key_gateway(start_gateway, tmp_path, rpm=1)
    assert await _chat_as(client, gateway, secret) == 200
    assert await _chat_as(client, gateway, secret) == 429
    await wait_for(lambda: _access_lines(gateway, r"POST /v1/chat/completions status=429 "))
    (line,) = _access_lines(gateway, r"POST /v1/chat/completions status=429 ")
    assert " info POST " in line


async def _chat_line(gateway: Gateway, client: aiohttp.ClientSession) -> str:
    """The access line of one chat served with status 200."""
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={"model": "alpha", "messages": [{"role": "user", "content": "hi"}]}
                           ) as resp:
        assert resp.status == 200
    await wait_for(lambda: _access_lines(gateway, r"POST /v1/chat/completions status=200 "))
    (line,) = _access_lines(gateway, r"POST /v1/chat/completions status=200 ")
    return line


async def test_the_access_line_names_the_upstream_s_own_id_of_the_request(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # LiteLLM's call id, the one its logs and spend records carry, before OpenAI's.
    fake.behave("m-alpha", headers={"x-request-id": "req_abc", "x-litellm-call-id": "call-123"})
    assert " upstream_request_id=call-123" in await _chat_line(gateway, client)


async def test_an_upstream_id_that_is_not_plain_is_quoted_in_the_access_line(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", headers={"request-id": 'a b" status=500'})
    line = await _chat_line(gateway, client)
    assert ' upstream_request_id="a b\\" status=500"' in line
