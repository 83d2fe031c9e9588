"""One gateway for all the tests of a module, where starting one per test would cost the
fast suite most of its time (each start is a third of a CPU second of imports).

A module opts in with::

    from tests import one_gateway

    upstream, gateway = one_gateway.upstream, one_gateway.gateway

Its tests then meet one fake upstream, forgotten between tests (`FakeUpstream.reset`),
and one `hxgw serve` on the default config whose `logs()` begin where each test does.
The gateway keeps what a test leaves in it: its metrics, ledger, status and key state,
circuits a Retry-After opened, its pooled connections. A test that reads those or leaves
them, signals the gateway or changes its config takes `own_gateway` (or `start_gateway`
for another config), which serves the same fake upstream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fake_upstream import FakeUpstream, serving_fake
from tests.fixtures import DEFAULT_ROUTING, Gateway, start_serving, write_config

SHARING = {
    # One test's failures must not open a circuit on the next one's model, nor its
    # wrong keys lock the next one out: both are the default's, raised out of reach.
    "routing": {**DEFAULT_ROUTING["routing"],
                "circuit_breaker": {"failures": 1_000_000},
                "health": {"error_window": 1_000_000}},
    "auth": {"max_bad_keys": 1_000_000},
}


@pytest.fixture(scope="module")
async def module_upstream() -> AsyncIterator[tuple[FakeUpstream, str]]:
    async with serving_fake() as served:
        yield served


@pytest.fixture(scope="module")
async def module_gateway(
    tmp_path_factory: pytest.TempPathFactory, module_upstream: tuple[FakeUpstream, str]
) -> AsyncIterator[Gateway]:
    config_dir = write_config(tmp_path_factory.mktemp("one-gateway") / "config",
                              module_upstream[1], routing={"routing": SHARING["routing"]},
                              gateway={"auth": SHARING["auth"]})
    started: list[Gateway] = []
    try:
        yield await start_serving(config_dir, started)
    finally:
        for gateway in started:
            gateway.stop()


@pytest.fixture
def upstream(module_upstream: tuple[FakeUpstream, str]) -> Iterator[tuple[FakeUpstream, str]]:
    module_upstream[0].reset()
    yield module_upstream
    module_upstream[0].abort_stalled()


@pytest.fixture
def gateway(module_gateway: Gateway, upstream: tuple[FakeUpstream, str]) -> Gateway:
    module_gateway.begin_test()
    return module_gateway
