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
    text = await _scrape(gateway, client)
    for endpoint in ("healthz", "readyz", "status.json", "metrics"):
        assert _sample(text, "hxgw_requests_total", endpoint=endpoint) is None
