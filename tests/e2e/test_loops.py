"""An upstream url that points back at the gateway: each request is refused once it comes
back (508), not sent round for ever."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict

from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import DEFAULT_MODELS, Gateway, free_port, new_key, wait_for, write_config

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
# Models the upstream knows by the gateway's names, as a gateway in front of another has.
MODELS = [{**model, "upstream_model": model["name"]} for model in DEFAULT_MODELS]
ROUTING = {"routing": {"default_group": "chat", "groups": {"chat": ["alpha"]}}}


@pytest.fixture
async def gateways(tmp_path: Path) -> AsyncIterator[Callable[..., Gateway]]:
    """Gateways on ports chosen first, each keyed so that the other (or itself) may call it
    with its upstream key, as a gateway in front of another one is."""
    started: list[Gateway] = []

    def make(name: str, port: int, upstream_port: int, key: str, **gateway: object) -> Gateway:
        config = write_config(tmp_path / name, f"http://127.0.0.1:{upstream_port}",
                              models=MODELS, routing=ROUTING, gateway=dict(gateway))
        made = Gateway(config_dir=config, key=key, upstream_key=key, port=port)
        started.append(made.start())
        return made

    yield make
    for gateway in started:
        gateway.stop()


def _chat_lines(gateway: Gateway) -> list[str]:
    return re.findall(r"POST /v1/chat/completions status=\d+.*", gateway.logs())


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_gateway_whose_upstream_is_itself_refuses_the_request_that_came_back(
    gateways: Callable[..., Gateway], client: aiohttp.ClientSession, workers: int
):
    port, key = free_port(), new_key()
    gateway = await gateways("self", port, port, key, workers=workers).wait_ready()
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=gateway.auth) as resp:
        body = await resp.json()
    assert resp.status == 508 and body["error"]["code"] == "loop_detected"
    assert "points at the gateway itself" in body["error"]["message"]
    # The client's request, and the one it sent itself: not thousands.
    await wait_for(lambda: len(_chat_lines(gateway)) >= 2)
    await asyncio.sleep(0.2)
    assert len(_chat_lines(gateway)) == 2


async def test_two_gateways_that_name_each_other_refuse_the_request_that_came_back(
    gateways: Callable[..., Gateway], client: aiohttp.ClientSession
):
    a_port, b_port, key = free_port(), free_port(), new_key()
    a = await gateways("a", a_port, b_port, key).wait_ready()
    b = await gateways("b", b_port, a_port, key).wait_ready()
    async with client.post(a.url + "/v1/chat/completions", json=CHAT, headers=a.auth) as resp:
        body = await resp.json()
    assert resp.status == 508 and body["error"]["code"] == "loop_detected"
    await wait_for(lambda: len(_chat_lines(a)) >= 2 and len(_chat_lines(b)) >= 1)
    await asyncio.sleep(0.2)
    assert len(_chat_lines(a)) == 2 and len(_chat_lines(b)) == 1


async def test_readiness_says_the_upstream_points_back_at_the_gateway(
    gateways: Callable[..., Gateway], client: aiohttp.ClientSession
):
    port, key = free_port(), new_key()
    gateway = await gateways("self", port, port, key).wait_ready()

    async def said() -> str:
        async with client.get(gateway.url + "/readyz") as resp:
            return str((await resp.json())["upstreams"][0]["last_error"])

    await wait_for(lambda: "probe failed" in gateway.logs())
    assert await said() == "HTTP 508: the upstream's url points back at this gateway"


async def test_a_client_s_long_via_is_not_passed_on_only_the_gateways_hops_are(
    start_gateway: StartGateway, fake: FakeUpstream, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    headers = CIMultiDict([*gateway.auth.items(), ("Via", "1.1 edge-" + "x" * 5000),
                           ("Via", "1.0 corp, 1.1 hxgw-ab12")])
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=headers) as resp:
        assert resp.status == 200
    vias = [value for name, value in fake.requests[-1].header_list if name.lower() == "via"]
    assert len(vias) == 2 and re.fullmatch(r"1\.1 hxgw-[0-9a-f]{12}", vias[0])
    assert vias[1] == "1.1 hxgw-ab12"
