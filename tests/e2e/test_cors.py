"""A chat page in a browser calls the API routes directly, as OpenAI's API lets it: the
preflight is answered and every answer carries CORS headers; the operator's routes never
answer another origin."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests import one_gateway
from tests.conftest import StartGateway
from tests.fixtures import Gateway

upstream, gateway = one_gateway.upstream, one_gateway.gateway
PAGE = "https://chat.example.com"
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def _preflight(method: str, headers: str = "authorization, content-type") -> dict[str, str]:
    return {"Origin": PAGE, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers}


async def test_a_preflight_for_an_api_route_is_answered_with_what_it_may_send(
    gateway: Gateway, client: aiohttp.ClientSession
):
    asked = "authorization, content-type, x-stainless-os, x-stainless-retry-count"
    async with client.options(gateway.url + "/v1/chat/completions",
                              headers=_preflight("POST", asked)) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert resp.headers["Access-Control-Allow-Methods"] == "POST"
        assert resp.headers["Access-Control-Allow-Headers"] == asked
        assert int(resp.headers["Access-Control-Max-Age"]) > 0


async def test_every_api_answer_to_a_page_may_be_read_by_it(
    gateway: Gateway, client: aiohttp.ClientSession
):
    headers = {"Origin": PAGE, **gateway.auth}
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert resp.headers["Access-Control-Expose-Headers"] == "*"
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT | {"stream": True},
                           headers=headers) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert (await resp.read()).rstrip().endswith(b"[DONE]")
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers={"Origin": PAGE}) as resp:
        assert resp.status == 401  # its error, which the page must be able to read
        assert resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_a_request_from_no_page_gets_no_cors_headers(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=gateway.auth) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_the_operators_routes_never_answer_another_origin(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.get(gateway.url + "/status.json",
                          headers={"Origin": PAGE, **gateway.auth}) as resp:
        assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers
    async with client.options(gateway.url + "/metrics", headers=_preflight("GET")) as resp:
        assert resp.status == 405 and "Access-Control-Allow-Origin" not in resp.headers
    async with client.delete(gateway.url + "/metrics", headers={"Origin": PAGE}) as resp:
        assert resp.status == 405 and "Access-Control-Allow-Origin" not in resp.headers


async def test_a_preflight_for_one_model_is_answered_and_a_wrong_method_on_it_is_405(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.options(gateway.url + "/v1/models/chat",
                              headers=_preflight("GET")) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Methods"] == "GET, HEAD"
    async with client.post(gateway.url + "/v1/models/chat", headers=gateway.auth) as resp:
        assert (resp.status, resp.headers["Allow"]) == (405, "GET, HEAD")


async def _listed_only(start_gateway: StartGateway, origins: list[str]) -> Gateway:
    cors: dict[str, Any] = {"allow_origins": origins}
    return await start_gateway(gateway={"cors": cors})


async def test_allowed_origins_are_named_back_and_others_get_nothing(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await _listed_only(start_gateway, [PAGE])
    async with client.options(gateway.url + "/v1/embeddings",
                              headers=_preflight("POST")) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == PAGE
        assert resp.headers["Vary"] == "Origin"
    other = {**_preflight("POST"), "Origin": "https://evil.example"}
    async with client.options(gateway.url + "/v1/embeddings", headers=other) as resp:
        assert resp.status == 405 and "Access-Control-Allow-Origin" not in resp.headers


async def test_an_empty_list_turns_cors_off(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await _listed_only(start_gateway, [])
    async with client.options(gateway.url + "/v1/chat/completions",
                              headers=_preflight("POST")) as resp:
        assert resp.status == 405 and "Access-Control-Allow-Origin" not in resp.headers
