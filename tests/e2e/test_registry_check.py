"""The readiness probe reads the upstream's model list, and says which of the models the
registry sends there it does not list: pointed at a new upstream with a registry made
for another, every request would fail over its models to a 502, and nothing else would
say why."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, wait_for

PROBED_OFTEN = {"readiness": {"interval": 0.2}}
WARNED = "the upstream does not list models the registry sends it"


async def _missing(gateway: Gateway, client: aiohttp.ClientSession) -> list[str]:
    """The models status.json says the upstream does not list, once a probe has read its
    list (the check is made with the probe that first finds it reachable)."""
    for _ in range(200):
        async with client.get(gateway.url + "/status.json", headers=gateway.auth) as resp:
            (upstream,) = (await resp.json())["upstreams"]
        if upstream["reachable"]:
            return upstream["missing_models"]
        await asyncio.sleep(0.05)
    raise TimeoutError("the upstream was never probed")


def _warnings(gateway: Gateway) -> list[str]:
    return [line for line in gateway.logs().splitlines() if WARNED in line]


async def test_a_registry_model_the_upstream_does_not_list_is_named_once_in_a_warning(
    start_gateway: StartGateway, fake: FakeUpstream
):
    fake.models.remove("m-gamma")
    gateway = await start_gateway(gateway=PROBED_OFTEN)
    await wait_for(lambda: _warnings(gateway), timeout=10)
    probes = len(fake.model_lists)
    await wait_for(lambda: len(fake.model_lists) >= probes + 3, timeout=10)  # still missing
    (line,) = _warnings(gateway)
    assert " warning " in line and "missing=m-gamma" in line and "m-alpha" in line


async def test_status_json_names_the_models_the_upstream_does_not_list(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.models.remove("m-gamma")
    gateway = await start_gateway(gateway=PROBED_OFTEN)
    await wait_for(lambda: _warnings(gateway), timeout=10)
    assert await _missing(gateway, client) == ["m-gamma"]


async def test_an_upstream_that_lists_the_model_again_is_said_to_and_clears_it(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.models.remove("m-gamma")
    gateway = await start_gateway(gateway=PROBED_OFTEN)
    await wait_for(lambda: _warnings(gateway), timeout=10)
    fake.models.append("m-gamma")
    await wait_for(lambda: "lists every model the registry sends it" in gateway.logs(), timeout=10)
    assert await _missing(gateway, client) == []


async def test_an_upstream_that_lists_every_registry_model_is_not_warned_of(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(gateway=PROBED_OFTEN)
    assert await _missing(gateway, client) == [] and not _warnings(gateway)


async def test_a_list_of_wildcards_is_not_taken_to_lack_anything(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.models[:] = ["m-alpha", "openai/*"]  # as LiteLLM lists a wildcard route
    gateway = await start_gateway(gateway=PROBED_OFTEN)
    assert await _missing(gateway, client) == [] and not _warnings(gateway)


async def test_the_first_page_of_a_longer_list_is_not_taken_to_lack_anything(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.models.remove("m-gamma")  # perhaps on a later page
    fake.models_paged = True
    gateway = await start_gateway(gateway=PROBED_OFTEN)
    assert await _missing(gateway, client) == [] and not _warnings(gateway)


async def test_the_warning_names_what_the_upstream_lists_in_a_line_of_its_own_size(
    start_gateway: StartGateway, fake: FakeUpstream
):
    # It named the first 20 as they came: 20 ids of 400,000 characters made a line of 8 MB.
    fake.models[:] = [f"{n}" + "x" * 400_000 for n in range(20)]
    gateway = await start_gateway(gateway=PROBED_OFTEN)
    await wait_for(lambda: _warnings(gateway), timeout=10)
    (line,) = _warnings(gateway)
    assert len(line) < 4096 and 'missing="m-alpha, m-beta, m-embed, m-gamma"' in line
