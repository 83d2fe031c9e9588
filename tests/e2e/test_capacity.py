"""Each upstream's cap and queue, seen from outside: a stuck upstream delays no
other, overload gets fast and honest 503s, and it shows in logs, metrics and /status."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import pytest

from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, poll, wait_for

MODELS = [
    {"name": "alpha", "tier_score": 0.9, "specializations": [], "upstream_model": "m-alpha",
     "upstream": "busy"},
    {"name": "beta", "tier_score": 0.9, "specializations": [], "upstream_model": "m-beta"},
]
ROUTING = {"routing": {"strategy": "failover", "default_group": "a",
                       "groups": {"a": ["alpha"], "b": ["beta"], "ab": ["alpha", "beta"]}}}


async def _start(start_gateway: StartGateway, url: str, **busy: Any) -> Gateway:
    """Two upstreams at the same fake: `busy` (alpha's) with the given settings, and
    `default` (beta's) with its own share."""
    upstreams = {"default": {"url": url}, "busy": {"url": url, **busy}}
    return await start_gateway(models=MODELS, routing=ROUTING,
                               gateway={"upstreams": upstreams})


async def _start_one_at_a_time(start_gateway: StartGateway, url: str, first_byte: float) -> Gateway:
    """alpha's upstream takes one request at a time, lets the next wait 30 s for a turn,
    and a single timeout opens a model's circuit: what the wait is held against shows."""
    routing = {"routing": {**ROUTING["routing"],
                           "circuit_breaker": {"failures": 1, "cooldown": 60}}}
    return await start_gateway(models=MODELS, routing=routing, gateway={
        "upstreams": {"default": {"url": url},
                      "busy": {"url": url, "max_concurrent": 1, "queue_timeout": 30}},
        "timeouts": {"connect": 2, "first_byte": first_byte, "answer": first_byte,
                     "total": 30}})


def _chat(group: str, stream: bool = False) -> dict[str, Any]:
    return {"model": group, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


def _waits(metrics: str, upstream: str) -> float:
    """How many requests waited for a turn at `upstream`, as /metrics counts them."""
    found = re.search(rf'^hxgw_upstream_queue_seconds_count{{upstream="{upstream}"}} (\S+)$',
                      metrics, re.M)
    return float(found[1]) if found else 0.0


async def _queued(client: aiohttp.ClientSession, gateway: Gateway, upstream: str) -> int:
    """The requests waiting for a turn at `upstream` now, as /status.json says."""
    async with client.get(gateway.url + "/status.json", headers=gateway.auth) as resp:
        status = await resp.json()
    return int(next(u for u in status["upstreams"] if u["name"] == upstream)["queued"])


@asynccontextmanager
async def _held_streams(
    gateway: Gateway, client: aiohttp.ClientSession, count: int
) -> AsyncIterator[None]:
    """`count` streams to group a, each past its first chunk and paused there."""
    async with AsyncExitStack() as stack:
        for _ in range(count):
            resp = await stack.enter_async_context(client.post(
                gateway.url + "/v1/chat/completions", json=_chat("a", stream=True),
                headers=gateway.auth))
            assert resp.status == 200
            await resp.content.readuntil(b"\n\n")
        yield


async def test_a_stuck_upstream_at_its_cap_does_not_delay_another_upstream(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    client: aiohttp.ClientSession,
):
    fake, url = upstream
    stuck = fake.behave("m-alpha", gate=asyncio.Event())
    gateway = await _start(start_gateway, url, max_concurrent=2, max_queued=10,
                           queue_timeout=30)
    async with _held_streams(gateway, client, 2):
        waiting = asyncio.ensure_future(client.post(
            gateway.url + "/v1/chat/completions", json=_chat("a"), headers=gateway.auth))
        await poll(lambda: _queued(client, gateway, "busy"), what="a request queued at busy")
        assert not waiting.done()  # alpha's third request waits for a turn ...
        async with client.post(gateway.url + "/v1/chat/completions", json=_chat("b"),
                               headers=gateway.auth, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            assert resp.status == 200  # ... while beta's upstream serves at once
            assert resp.headers["X-HX-Model"] == "beta"
        assert stuck.gate is not None
        stuck.gate.set()
        async with await waiting as resp:
            assert resp.status == 200


async def test_past_the_queue_a_request_gets_503_at_once_with_retry_after(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    client: aiohttp.ClientSession,
):
    fake, url = upstream
    fake.behave("m-alpha", gate=asyncio.Event())
    gateway = await _start(start_gateway, url, max_concurrent=1, max_queued=0,
                           queue_timeout=7)
    async with _held_streams(gateway, client, 1):
        async with client.post(gateway.url + "/v1/chat/completions", json=_chat("a"),
                               headers=gateway.auth) as resp:
            body = await resp.json()
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "7"
        async with client.get(gateway.url + "/metrics", headers=gateway.auth) as scrape:
            metrics = await scrape.text()
    # Not made to wait out its queue_timeout: no request waited for a turn at all.
    assert _waits(metrics, "busy") == 0
    assert body["error"]["code"] == "gateway_at_capacity"
    assert "at capacity for upstream 'busy'" in body["error"]["message"]


async def test_a_request_waits_no_longer_than_queue_timeout_then_gets_503(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    client: aiohttp.ClientSession,
):
    fake, url = upstream
    fake.behave("m-alpha", gate=asyncio.Event())
    gateway = await _start(start_gateway, url, max_concurrent=1, max_queued=5,
                           queue_timeout=0.3)
    async with (
        _held_streams(gateway, client, 1),
        client.post(gateway.url + "/v1/chat/completions", json=_chat("a"),
                    headers=gateway.auth) as resp,
    ):
        body = await resp.json()
        assert resp.status == 503
    assert "no turn within queue_timeout" in body["error"]["message"]


async def test_a_request_whose_first_byte_time_runs_out_in_the_queue_is_shed_not_blamed(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    client: aiohttp.ClientSession,
):
    fake, url = upstream
    fake.behave("m-alpha", gate=asyncio.Event())
    gateway = await _start_one_at_a_time(start_gateway, url, first_byte=0.5)
    async with _held_streams(gateway, client, 1):
        async with client.post(gateway.url + "/v1/chat/completions", json=_chat("a"),
                               headers=gateway.auth) as resp:
            body = await resp.json()
            assert resp.status == 503
        async with client.get(gateway.url + "/metrics", headers=gateway.auth) as scrape:
            metrics = await scrape.text()
    assert "no turn within the first-byte timeout" in body["error"]["message"]
    assert len(fake.requests) == 1  # the held stream's alone
    assert 'hxgw_upstream_errors_total{kind="timeout",model="alpha"} 0.0' in metrics
    assert 'hxgw_circuit_state{model="alpha"} 0.0' in metrics


# Each far from half of the second: the client's request reaches the gateway a little
# after its sleep begins, and later on a busy machine.
@pytest.mark.parametrize(("turn_after", "blamed"), [(0.8, False), (0.1, True)])
async def test_a_model_is_blamed_for_a_timeout_only_if_it_had_half_its_first_byte_time(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    client: aiohttp.ClientSession, turn_after: float, blamed: bool,
):
    fake, url = upstream
    held = fake.behave("m-alpha", gate=asyncio.Event())
    gateway = await _start_one_at_a_time(start_gateway, url, first_byte=1)
    async with _held_streams(gateway, client, 1):
        fake.behave("m-alpha", header_delay=5)  # the next one hangs past any deadline
        waiting = asyncio.ensure_future(client.post(
            gateway.url + "/v1/chat/completions", json=_chat("a"), headers=gateway.auth))
        await asyncio.sleep(turn_after)  # when its turn comes, of its first-byte second
        assert held.gate is not None
        held.gate.set()
        async with await waiting as resp:
            assert resp.status == 504
    async with client.get(gateway.url + "/metrics", headers=gateway.auth) as scrape:
        metrics = await scrape.text()
    count = 1.0 if blamed else 0.0
    assert f'hxgw_upstream_errors_total{{kind="timeout",model="alpha"}} {count}' in metrics
    assert f'hxgw_circuit_state{{model="alpha"}} {count}' in metrics


async def test_a_queued_request_is_served_when_a_turn_frees_and_its_wait_is_logged(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    client: aiohttp.ClientSession,
):
    fake, url = upstream
    held = fake.behave("m-alpha", gate=asyncio.Event())
    gateway = await _start(start_gateway, url, max_concurrent=1, max_queued=5,
                           queue_timeout=30)
    async with _held_streams(gateway, client, 1):
        waiting = asyncio.ensure_future(client.post(
            gateway.url + "/v1/chat/completions", json=_chat("a"), headers=gateway.auth))
        await poll(lambda: _queued(client, gateway, "busy"), what="a request queued at busy")
        await asyncio.sleep(0.3)  # then it waits 0.3 s at least
        assert held.gate is not None
        held.gate.set()
        async with await waiting as resp:
            assert resp.status == 200
            request_id = resp.headers["X-Request-ID"]
    await wait_for(lambda: f"request_id={request_id}" in gateway.logs())
    line = next(x for x in gateway.logs().splitlines() if f"request_id={request_id}" in x)
    queued = re.search(r"queued_ms=([\d.]+)", line)
    assert queued is not None and float(queued[1]) >= 200


async def test_a_candidate_whose_upstream_is_full_fails_over_to_the_next(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    client: aiohttp.ClientSession,
):
    fake, url = upstream
    fake.behave("m-alpha", gate=asyncio.Event())
    gateway = await _start(start_gateway, url, max_concurrent=1, max_queued=0)
    async with (
        _held_streams(gateway, client, 1),
        client.post(gateway.url + "/v1/chat/completions", json=_chat("ab"),
                    headers=gateway.auth) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["X-HX-Model"] == "beta"


async def test_a_full_upstream_and_a_failed_model_get_the_retryable_503_of_the_full_one(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    client: aiohttp.ClientSession,
):
    # Whatever else failed, a turn at the busy upstream is what a retry can get: beta's
    # 500 alone would tell the client nothing of waiting.
    fake, url = upstream
    fake.behave("m-alpha", gate=asyncio.Event())
    fake.behave("m-beta", status=500)
    gateway = await _start(start_gateway, url, max_concurrent=1, max_queued=0,
                           queue_timeout=7)
    async with (
        _held_streams(gateway, client, 1),
        client.post(gateway.url + "/v1/chat/completions", json=_chat("ab"),
                    headers=gateway.auth) as resp,
    ):
        body = await resp.json()
        assert (resp.status, resp.headers.get("Retry-After")) == (503, "7")
    assert body["error"]["code"] == "gateway_at_capacity"


async def test_shedding_shows_in_metrics_status_and_one_warning(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    client: aiohttp.ClientSession,
):
    fake, url = upstream
    fake.behave("m-alpha", gate=asyncio.Event())
    gateway = await _start(start_gateway, url, max_concurrent=1, max_queued=0)
    async with _held_streams(gateway, client, 1):
        for _ in range(3):
            async with client.post(gateway.url + "/v1/chat/completions", json=_chat("a"),
                                   headers=gateway.auth) as resp:
                assert resp.status == 503
        async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
            metrics = await resp.text()
        async with client.get(gateway.url + "/status.json", headers=gateway.auth) as resp:
            status = await resp.json()
    assert 'hxgw_upstream_shed_total{upstream="busy"} 3.0' in metrics
    assert 'hxgw_upstream_in_use{upstream="busy"} 1.0' in metrics
    assert 'hxgw_upstream_cap{upstream="busy"} 1.0' in metrics
    busy = next(u for u in status["upstreams"] if u["name"] == "busy")
    assert (busy["in_use"], busy["cap"], busy["queued"], busy["shed"]) == (1, 1, 0, 3)
    warnings = [x for x in gateway.logs().splitlines() if "upstream at capacity" in x]
    assert len(warnings) == 1 and "upstream=busy" in warnings[0]


async def test_a_request_shed_by_a_full_upstream_waits_once_not_once_a_model_there(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    client: aiohttp.ClientSession,
):
    fake, url = upstream
    fake.behave("m-alpha", gate=asyncio.Event())
    twin = {**MODELS[0], "name": "alpha2", "upstream_model": "m-alpha2"}
    routing = {"routing": {"strategy": "failover", "default_group": "a",
                           "groups": {"a": ["alpha"], "twins": ["alpha", "alpha2"]}}}
    upstreams = {"default": {"url": url},
                 "busy": {"url": url, "max_concurrent": 1, "queue_timeout": 0.3}}
    gateway = await start_gateway(models=[*MODELS, twin], routing=routing,
                                  gateway={"upstreams": upstreams})
    async with (
        _held_streams(gateway, client, 1),
        client.post(gateway.url + "/v1/chat/completions", json=_chat("twins"),
                    headers=gateway.auth) as resp,
    ):
        assert resp.status == 503
    async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
        metrics = await resp.text()
    assert 'hxgw_upstream_queue_seconds_count{upstream="busy"} 1.0' in metrics
    assert "hxgw_failovers_total{" not in metrics  # no model failed
    await wait_for(lambda: re.search(r"status=503 .*queued_ms=\d", gateway.logs()))
