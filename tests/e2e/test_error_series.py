"""Each configured model's error series, exported at 0 by a real `hxgw serve` before its
first error, and kept right across reloads that add or remove models."""

from __future__ import annotations

import signal

import aiohttp
import yaml

from hxgw.observe.model_series import UPSTREAM_ERROR_KINDS
from tests.e2e.test_alert_metrics import _sample, _scrape
from tests.fixtures import Gateway, wait_for


def _models(*names: str) -> list[dict[str, object]]:
    return [{"name": n, "upstream_model": f"m-{n}", "tier_score": 0.5, "specializations": []}
            for n in names]


def _routing(*names: str) -> dict[str, object]:
    return {"routing": {"default_group": "chat", "groups": {"chat": list(names)}}}


async def _reload_with(gateway: Gateway, *names: str) -> None:
    (gateway.config_dir / "model_registry.yaml").write_text(
        yaml.safe_dump({"models": _models(*names)}))
    (gateway.config_dir / "routing.yaml").write_text(yaml.safe_dump(_routing(*names)))
    reloads = gateway.logs().count("config reloaded")
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: gateway.logs().count("config reloaded") > reloads)


async def _chat(client: aiohttp.ClientSession, gateway: Gateway) -> int:
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={"messages": [{"role": "user", "content": "hi"}]}) as resp:
        await resp.read()
        return resp.status


async def test_each_configured_model_s_upstream_errors_are_exported_at_zero_from_the_start(
    start_gateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(models=_models("alpha", "beta"),
                                  routing=_routing("alpha", "beta"))
    text = await _scrape(gateway, client)
    for model in ("alpha", "beta"):
        for kind in UPSTREAM_ERROR_KINDS:
            assert _sample(text, "hxgw_upstream_errors_total", model=model, kind=kind) == 0


async def test_each_configured_model_s_tokens_are_exported_at_zero_from_the_start(
    start_gateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(models=_models("alpha"), routing=_routing("alpha"))
    text = await _scrape(gateway, client)
    for kind in ("prompt", "completion"):
        assert _sample(text, "hxgw_tokens_total", model="alpha", kind=kind) == 0


async def test_a_model_a_reload_adds_has_its_upstream_errors_at_zero(
    start_gateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(models=_models("alpha"), routing=_routing("alpha"))
    await _reload_with(gateway, "alpha", "gamma")
    text = await _scrape(gateway, client)
    for kind in UPSTREAM_ERROR_KINDS:
        assert _sample(text, "hxgw_upstream_errors_total", model="gamma", kind=kind) == 0


async def test_a_model_a_reload_removes_loses_the_series_that_counted_nothing(
    start_gateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(models=_models("alpha", "beta"),
                                  routing=_routing("alpha", "beta"))
    await _reload_with(gateway, "alpha")
    text = await _scrape(gateway, client)
    assert _sample(text, "hxgw_upstream_errors_total", model="beta") is None
    assert _sample(text, "hxgw_tokens_total", model="beta") is None
    assert _sample(text, "hxgw_upstream_errors_total", model="alpha", kind="timeout") == 0


async def test_a_model_a_reload_removes_keeps_the_errors_it_counted(
    start_gateway, client: aiohttp.ClientSession, dead_port: int
):
    gateway = await start_gateway(upstream_url=f"http://127.0.0.1:{dead_port}",
                                  models=_models("alpha"), routing=_routing("alpha"))
    assert await _chat(client, gateway) == 502
    await _reload_with(gateway, "beta")
    text = await _scrape(gateway, client)
    assert _sample(text, "hxgw_upstream_errors_total", model="alpha", kind="connect_error") == 1
    assert _sample(text, "hxgw_upstream_errors_total", model="alpha", kind="timeout") is None
