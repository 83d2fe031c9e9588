"""A reload that stops sending requests to an upstream (removed, or given another URL)
closes the gateway's connections to it: the idle ones at once, one in use when its
request is done. They had stayed open until the idle sweep found them."""

from __future__ import annotations

import signal

import aiohttp
import yaml

from tests.conftest import StartGateway
from tests.e2e.test_odd_upstream_answers import RawUpstream, _chat, sse
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, wait_for
from tests.raw_upstream import Server, serving

SLOWLY = {"readiness": {"interval": 60, "stale_after": 180}}  # no probe meanwhile


async def _move_default_upstream(gateway: Gateway, url: str) -> None:
    path = gateway.config_dir / "gateway.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["upstreams"]["default"]["url"] = url
    path.write_text(yaml.safe_dump(doc))
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded generation=2" in gateway.logs(), timeout=10)


async def _gateway_on(start_gateway: StartGateway, raw: RawUpstream, server: Server) -> Gateway:
    gateway = await start_gateway(upstream_url=raw.url, gateway=SLOWLY)
    await wait_for(lambda: server.connections > 0, timeout=10)  # the probe at the start
    return gateway


async def test_a_reload_that_moves_an_upstream_closes_the_idle_connections_to_its_old_url(
    start_gateway: StartGateway, fake: FakeUpstream, upstream: tuple[FakeUpstream, str],
    client: aiohttp.ClientSession,
):
    raw = RawUpstream()
    async with serving(raw.serve) as server:
        raw.url = f"http://127.0.0.1:{server.origin.port}"
        gateway = await _gateway_on(start_gateway, raw, server)
        assert (await _chat(client, gateway, model="solo"))[0] == 200
        assert server.open > 0  # kept alive, idle in the gateway's pool
        await _move_default_upstream(gateway, upstream[1])
        await wait_for(lambda: server.open == 0, timeout=3)  # the sweep would take 4.5 s


async def test_a_connection_in_use_across_the_reload_is_closed_once_its_request_is_done(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    client: aiohttp.ClientSession,
):
    raw = RawUpstream()
    first, *rest = sse(b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n',
                       b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
                       b"data: [DONE]\n\n")
    raw.answers["m-gamma"] = [first, *rest[:2], 1.5, *rest[2:]]  # a pause after its first event
    async with serving(raw.serve) as server:
        raw.url = f"http://127.0.0.1:{server.origin.port}"
        gateway = await _gateway_on(start_gateway, raw, server)
        async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                               json={"model": "solo", "stream": True,
                                     "messages": [{"role": "user", "content": "hi"}]}) as resp:
            await resp.content.readany()  # under way
            await _move_default_upstream(gateway, upstream[1])
            body = await resp.read()
        assert body.endswith(b"data: [DONE]\n\n")
        await wait_for(lambda: server.open == 0, timeout=3)
