"""A client's JSON as hostile or odd clients write it: what is valid JSON reaches the
upstream meaning what it meant, whatever the gateway rewrote (the model, a transform);
what is not gets a 400 that says why."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway

CHAT_PATH = "/v1/chat/completions"
MESSAGES = b'"messages":[{"role":"user","content":"hi"}]'


async def _post(client: aiohttp.ClientSession, gateway: Gateway, body: bytes) -> int:
    headers = gateway.auth | {"Content-Type": "application/json"}
    async with client.post(gateway.url + CHAT_PATH, data=body, headers=headers) as resp:
        await resp.read()
        return resp.status


@pytest.mark.parametrize("number", [
    18446744073709551616,  # 2**64: one past the largest integer orjson reads as one
    -9223372036854775809,  # one below the smallest
    123456789012345678901234567890,
])
async def test_an_integer_beyond_64_bits_reaches_the_upstream_as_the_same_integer(
    gateway: Gateway, fake: FakeUpstream, client: aiohttp.ClientSession, number: int
):
    # The model names a group: the body is encoded again with the upstream model's name.
    body = b'{"model":"chat",%s,"seed":%d,"metadata":{"n":[%d]}}' % (MESSAGES, number, number)
    assert await _post(client, gateway, body) == 200
    sent = fake.requests[-1].body
    assert sent["model"] == "m-alpha"
    # As text: 2**64 read as a float is equal to it, and is still not what was sent.
    assert json.dumps([sent["seed"], sent["metadata"]]) == json.dumps([number, {"n": [number]}])
