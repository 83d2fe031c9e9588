"""A key's budget and what it spent this period, exported by a real `hxgw serve`, so
that headroom can be alerted on before the key's requests get 429s."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import StartGateway
from tests.e2e.test_alert_metrics import _chat_as, _key_gateway, _sample, _scrape
from tests.e2e.test_alert_metrics import _scrape_fresh as _scrape_any_worker
from tests.e2e.test_keys_cli import PRICED, keys
from tests.e2e.test_observability import wait_for_async
from tests.fixtures import Gateway


async def test_a_budgeted_key_s_budget_and_its_spend_this_period_are_exported_by_name(
    start_gateway, client: aiohttp.ClientSession, tmp_path: Path
):
    gateway, secret = await _key_gateway(start_gateway, tmp_path, budget=5.0)
    for _ in range(3):
        assert await _chat_as(client, gateway, secret) == 200
    text = await _scrape(gateway, client)
    assert _sample(text, "hxgw_key_budget", key="app") == 5.0
    spent = _sample(text, "hxgw_key_budget_spent", key="app")
    assert spent is not None and spent > 0
    assert spent == pytest.approx(_sample(text, "hxgw_key_spend_total", key="app"))
    assert secret not in text


async def test_a_key_refused_for_its_budget_keeps_the_spend_its_served_requests_cost(
    start_gateway, client: aiohttp.ClientSession, tmp_path: Path
):
    gateway, secret = await _key_gateway(start_gateway, tmp_path, budget=0.03)
    statuses = [await _chat_as(client, gateway, secret) for _ in range(8)]
    assert statuses[0] == 200 and statuses[-1] == 429
    text = await _scrape(gateway, client)
    assert _sample(text, "hxgw_key_refused_total", key="app", outcome="insufficient_quota")
    assert _sample(text, "hxgw_key_budget", key="app") == 0.03
    spent = _sample(text, "hxgw_key_budget_spent", key="app")
    assert spent == pytest.approx(_sample(text, "hxgw_key_spend_total", key="app"))


async def test_a_key_without_a_budget_has_no_budget_series(
    start_gateway, client: aiohttp.ClientSession, tmp_path: Path
):
    gateway, secret = await _key_gateway(start_gateway, tmp_path, rpm=100)
    assert await _chat_as(client, gateway, secret) == 200
    text = await _scrape(gateway, client)
    assert _sample(text, "hxgw_key_budget", key="app") is None
    assert _sample(text, "hxgw_key_budget_spent", key="app") is None


async def _budget_after(client: aiohttp.ClientSession, gateway: Gateway, change: list[str],
                        wanted: float | None) -> None:
    """Run `hxgw keys ...change` and wait (a few seconds at most: the gateway reads the
    store once a second) for the scraped budget of `app` to read `wanted`, with no
    request of the key in between."""
    done = keys(gateway, *change)
    assert done.returncode == 0, done.stderr

    async def budget() -> float | None:
        return _sample(await _scrape(gateway, client), "hxgw_key_budget", key="app")

    await wait_for_async(budget, wanted, timeout=4)


async def _stored_budget_key(start_gateway: StartGateway, client: aiohttp.ClientSession,
                             tmp_path: Path) -> Gateway:
    gateway = await start_gateway(
        env={"HX_STATE_DIR": str(tmp_path / "state")}, models=PRICED)
    made = keys(gateway, "create", "app", "--budget", "5")
    assert made.returncode == 0, made.stderr
    assert await _chat_as(client, gateway, made.stdout.strip()) == 200
    assert _sample(await _scrape(gateway, client), "hxgw_key_budget", key="app") == 5.0
    return gateway


async def test_a_budget_changed_by_hxgw_keys_update_is_exported_as_it_now_is(
    start_gateway: StartGateway, client: aiohttp.ClientSession, tmp_path: Path
):
    gateway = await _stored_budget_key(start_gateway, client, tmp_path)
    await _budget_after(client, gateway, ["update", "app", "--budget", "10"], 10.0)


async def test_a_revoked_key_s_budget_series_go_with_it(
    start_gateway: StartGateway, client: aiohttp.ClientSession, tmp_path: Path
):
    gateway = await _stored_budget_key(start_gateway, client, tmp_path)
    await _budget_after(client, gateway, ["revoke", "app"], None)
    assert _sample(await _scrape(gateway, client), "hxgw_key_budget_spent", key="app") is None


async def test_a_key_whose_budget_is_lifted_has_no_budget_series_any_more(
    start_gateway: StartGateway, client: aiohttp.ClientSession, tmp_path: Path
):
    gateway = await _stored_budget_key(start_gateway, client, tmp_path)
    await _budget_after(client, gateway, ["update", "app", "--budget", "none"], None)


@pytest.mark.workers
async def test_with_workers_a_key_s_budget_is_exported_once_not_once_per_worker(
    start_gateway, tmp_path: Path
):
    gateway, secret = await _key_gateway(start_gateway, tmp_path, budget=5.0, workers=2)
    async with contextlib.AsyncExitStack() as held:
        served: set[str] = set()
        requests = 0
        for _ in range(50):  # until both workers have served the key
            # A connection of its own for each, so that either worker may answer; kept
            # open, so that no request's end is cut short by its client leaving.
            sessions = [await held.enter_async_context(aiohttp.ClientSession())
                        for _ in range(4)]
            statuses = await asyncio.gather(*(_chat_as(s, gateway, secret) for s in sessions))
            assert statuses == [200] * 4
            requests += 4  # counted here: an access line may be written a moment later
            served = set(re.findall(r"POST /v1/chat/completions .* worker=(\d)",
                                    gateway.logs()))
            if served == {"0", "1"}:
                break
        assert served == {"0", "1"}

        def settled(text: str) -> bool:
            spent = _sample(text, "hxgw_key_budget_spent", key="app")
            return _sample(text, "hxgw_key_requests_total", key="app") == requests and (
                spent == pytest.approx(_sample(text, "hxgw_key_spend_total", key="app")))

        # Until a scrape has both workers' figures: each shares them once a second.
        for _ in range(100):
            text = await _scrape_any_worker(gateway, "/metrics")
            if settled(text):
                break
            await asyncio.sleep(0.1)
    assert _sample(text, "hxgw_key_requests_total", key="app") == requests
    assert _sample(text, "hxgw_key_budget", key="app") == 5.0
    # The whole spend, every worker's: each worker's gauge had missed the others' charges
    # since its own last request, and the highest of them stayed low while the key idled.
    assert _sample(text, "hxgw_key_budget_spent", key="app") == pytest.approx(
        _sample(text, "hxgw_key_spend_total", key="app"))
