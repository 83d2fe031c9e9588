from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, settings

from tests.fake_upstream import FakeUpstream, serving_fake
from tests.fixtures import Gateway, NotifySocket, start_serving, stop_all, write_config
from tests.one_gateway import module_gateway, module_upstream  # noqa: F401 (fixtures)

StartGateway = Callable[..., Awaitable[Gateway]]

# The machines are shared and noisy: input generation speed says nothing about the code.
settings.register_profile("hxgw", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("hxgw")


# A test that starts PostgreSQL or Redis is in their suite (`make test-stores`): each
# starts real servers, which would take the fast suite past its five minutes.
_STORE_FIXTURES = {
    "postgres": {"postgres_server", "postgres_url", "own_postgres"},
    "redis": {"redis_server"},
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for mark, fixtures in _STORE_FIXTURES.items():
            if used & fixtures:
                item.add_marker(mark)


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[FakeUpstream, str]]:
    async with serving_fake() as served:
        yield served


@pytest.fixture
async def second_upstream() -> AsyncIterator[tuple[FakeUpstream, str]]:
    """Another fake upstream, holding its own responses, files and batches: what a
    call sent to the wrong upstream meets."""
    async with serving_fake() as served:
        yield served


@pytest.fixture
def fake(upstream: tuple[FakeUpstream, str]) -> FakeUpstream:
    return upstream[0]


@pytest.fixture
async def start_gateway(
    tmp_path: Path, upstream: tuple[FakeUpstream, str]
) -> AsyncIterator[StartGateway]:
    """Start real `hxgw serve` processes against the fake upstream; stop them afterwards."""
    started: list[Gateway] = []

    async def start(
        *, upstream_url: str | None = None, upstream_key: str | None = None,
        env: dict[str, str] | None = None, wait: bool = True, **config: Any,
    ) -> Gateway:
        config_dir = write_config(tmp_path / f"config{len(started)}",
                                  upstream_url or upstream[1], **config)
        return await start_serving(config_dir, started, upstream_key=upstream_key,
                                   env=env, wait=wait)

    yield start
    stop_all(started)


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> Gateway:
    return await start_gateway()


@pytest.fixture
async def own_gateway(start_gateway: StartGateway) -> Gateway:
    """A gateway for this test alone, where its module's tests share one
    (tests/one_gateway.py): for a test that leaves state behind in it."""
    return await start_gateway()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A loopback port nothing listens on for the whole test: it is held bound but not
    listening, so a connection to it is refused and no other test's server can take it
    in the meantime (a port only free when chosen once got another test's gateway)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.sock.close()
