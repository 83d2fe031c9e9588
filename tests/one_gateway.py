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

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_upstream import FakeUpstream, serving_fake
from tests.fixtures import DEFAULT_ROUTING, Gateway, start_serving, stop_all, write_config

SHARING: dict[str, dict[str, Any]] = {
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


@contextlib.asynccontextmanager
async def serving_shared(
    directory: Path, upstream_url: str, *, models: list[dict[str, Any]] | None = None,
    groups: dict[str, list[str]] | None = None, auth: dict[str, Any] | None = None,
) -> AsyncIterator[Gateway]:
    """A gateway for a module's tests to share: the default config, or these models,
    groups and auth settings, with SHARING's."""
    routing = SHARING["routing"] | ({"groups": groups} if groups else {})
    config_dir = write_config(directory / "config", upstream_url, models=models,
                              routing={"routing": routing},
                              gateway={"auth": SHARING["auth"] | (auth or {})})
    started: list[Gateway] = []
    try:
        yield await start_serving(config_dir, started)
    finally:
        stop_all(started)


@pytest.fixture(scope="module")
async def module_gateway(
    tmp_path_factory: pytest.TempPathFactory, module_upstream: tuple[FakeUpstream, str]
) -> AsyncIterator[Gateway]:
    async with serving_shared(tmp_path_factory.mktemp("one-gateway"), module_upstream[1]) as gw:
        yield gw


@pytest.fixture
async def upstream(
    module_upstream: tuple[FakeUpstream, str],
) -> AsyncIterator[tuple[FakeUpstream, str]]:
    module_upstream[0].reset()
    yield module_upstream
    module_upstream[0].abort_stalled()
    await module_upstream[0].settled()  # not to record into the next test's state


@pytest.fixture
def gateway(module_gateway: Gateway, upstream: tuple[FakeUpstream, str]) -> Gateway:
    module_gateway.begin_test()
    return module_gateway
