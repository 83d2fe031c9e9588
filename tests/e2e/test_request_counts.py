"""What `hxgw_requests_total` counts beside the API requests, as a real `hxgw serve`
exports it: the requests no route takes and the operator's routes' refusals, with
labels that stay few whatever paths a scanner tries."""

from __future__ import annotations

import aiohttp

from tests.e2e.test_alert_metrics import _sample, _scrape
from tests.fixtures import Gateway


async def test_a_404_is_counted_under_the_unrouted_endpoint_not_under_its_path(
    gateway: Gateway, client: aiohttp.ClientSession
):
    for path in ("/wp-admin/setup-config.php", "/.env", "/v1/no-such-route"):
        async with client.get(gateway.url + path, headers=gateway.auth) as resp:
            assert resp.status == 404
    text = await _scrape(gateway, client)
    assert _sample(text, "hxgw_requests_total", endpoint="unrouted", status="404") == 3
    assert "wp-admin" not in text and "no-such-route" not in text


async def test_a_method_a_route_does_not_take_is_counted_as_its_405(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.get(gateway.url + "/v1/chat/completions", headers=gateway.auth) as resp:
        assert resp.status == 405
    text = await _scrape(gateway, client)
    assert _sample(text, "hxgw_requests_total", endpoint="unrouted", status="405") == 1


async def test_a_scrape_with_a_wrong_key_is_counted_as_a_401_of_the_metrics_route(
    gateway: Gateway, client: aiohttp.ClientSession
):
    wrong = {"Authorization": "Bearer sk-wrong-" + "x" * 24}
    async with client.get(gateway.url + "/metrics", headers=wrong) as resp:
        assert resp.status == 401
    text = await _scrape(gateway, client)
    assert _sample(text, "hxgw_requests_total", endpoint="metrics", status="401") == 1


async def test_the_operator_s_routes_answered_are_not_counted_as_requests(
    gateway: Gateway, client: aiohttp.ClientSession
):
    for path in ("/healthz", "/readyz", "/status.json"):
        async with client.get(gateway.url + path, headers=gateway.auth) as resp:
            assert resp.status in (200, 503)
    await _scrape(gateway, client)  # its own count, if any, comes after its text
    text = await _scrape(gateway, client)
    for endpoint in ("healthz", "readyz", "status.json", "metrics"):
        assert _sample(text, "hxgw_requests_total", endpoint=endpoint) is None


def _durations(text: str, **labels: str) -> float | None:
    return _sample(text, "hxgw_request_duration_seconds_count", **labels)


async def _chat(client: aiohttp.ClientSession, gateway: Gateway, headers: dict[str, str],
                body: bytes = b'{"messages": [{"role": "user", "content": "hi"}]}') -> int:
    headers = {**headers, "Content-Type": "application/json"}
    async with client.post(gateway.url + "/v1/chat/completions", data=body,
                           headers=headers) as resp:
        await resp.read()
        return resp.status


async def test_a_request_refused_for_its_key_is_counted_but_kept_out_of_the_latency_histogram(
    gateway: Gateway, client: aiohttp.ClientSession
):
    assert await _chat(client, gateway, {"Authorization": "Bearer sk-wrong-" + "x" * 24}) == 401
    text = await _scrape(gateway, client)
    assert _sample(text, "hxgw_requests_total", endpoint="chat", status="401") == 1
    assert _durations(text, endpoint="chat") is None


async def test_a_request_refused_for_its_body_is_counted_but_kept_out_of_the_latency_histogram(
    gateway: Gateway, client: aiohttp.ClientSession
):
    assert await _chat(client, gateway, gateway.auth, body=b"{not json") == 400
    assert await _chat(client, gateway, gateway.auth) == 200
    text = await _scrape(gateway, client)
    assert _sample(text, "hxgw_requests_total", endpoint="chat", status="400") == 1
    assert _durations(text, endpoint="chat", model="") is None
    assert _durations(text, endpoint="chat") == 1  # the one served


async def test_a_request_no_upstream_could_serve_is_in_the_latency_histogram(
    start_gateway, client: aiohttp.ClientSession, dead_port: int
):
    gateway = await start_gateway(upstream_url=f"http://127.0.0.1:{dead_port}")
    assert await _chat(client, gateway, gateway.auth) == 502
    text = await _scrape(gateway, client)
    assert _durations(text, endpoint="chat", model="") == 1
