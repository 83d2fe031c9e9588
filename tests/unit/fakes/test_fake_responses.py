"""The fake Responses API refuses an `input` it cannot read with OpenAI's 400, over a real
socket, where it used to fail on it with a 500 of its own."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.fake_upstream import FakeUpstream

GUARD = 5
"""A hang guard, never a measure."""
PATHS = ["/v1/responses", "/v1/responses/input_tokens", "/v1/responses/compact"]


async def post(client: aiohttp.ClientSession, url: str, path: str,
               given: Any) -> tuple[int, Any]:
    async with asyncio.timeout(GUARD):
        async with client.post(f"{url}{path}", json={"model": "m-alpha", "input": given}) as r:
            return r.status, await r.json()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("given", "got"), [([5], "an integer"), ([[1]], "an array"),
                                            (["hi", {"role": "user"}], "a string")])
async def test_an_input_item_that_is_not_an_object_is_refused_as_openai_refuses_it(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession,
    path: str, given: list[Any], got: str,
) -> None:
    assert await post(client, upstream[1], path, given) == (400, {"error": {
        "message": f"Invalid type for 'input[0]': expected an object, but got {got} instead.",
        "type": "invalid_request_error", "param": "input[0]", "code": "invalid_type"}})


@pytest.mark.parametrize("path", PATHS)
async def test_an_input_neither_a_string_nor_a_list_is_refused_as_openai_refuses_it(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession, path: str
) -> None:
    status, body = await post(client, upstream[1], path, 5)
    assert (status, body["error"]["param"], body["error"]["code"]) == (400, "input",
                                                                     "invalid_type")


async def test_a_refused_input_is_refused_even_where_nothing_would_be_stored(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession
) -> None:
    body = {"model": "m-alpha", "input": [5], "store": False}
    async with client.post(f"{upstream[1]}/v1/responses", json=body) as response:
        assert response.status == 400
