from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from hxgw.keys.book import StoredKeys
from hxgw.keys.limiter_memory import MemoryLimiter
from hxgw.keys.limiter_redis import RedisLimiter
from hxgw.keys.limiter_shared import SharedLimiter
from hxgw.keys.limits import Limiter
from hxgw.keys.store import KeyStore
from hxgw.store import Database, open_database
from tests.postgres import postgres_server, postgres_url  # noqa: F401 -- fixtures
from tests.redis_server import redis_server  # noqa: F401 -- a fixture

MakeLimiter = Callable[..., Limiter]


@pytest.fixture(params=["memory", "shared", pytest.param("redis", marks=pytest.mark.redis)])
async def make_limiter(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[MakeLimiter]:
    """Limiters of one backend (each test runs once per backend); all made by one call
    share one store, the way two workers or two instances would."""
    made: list[Limiter] = []
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else ""

    def make(lease_s: float = 900.0) -> Limiter:
        limiter: Limiter
        if request.param == "memory":
            limiter = MemoryLimiter(lease_s=lease_s)
        elif request.param == "shared":
            limiter = SharedLimiter(tmp_path, lease_s=lease_s)
        else:
            limiter = RedisLimiter(url, lease_s=lease_s)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """An empty store: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return open_database(None, tmp_path / "state")
    return open_database(request.getfixturevalue("postgres_url"), tmp_path)


@pytest.fixture
def book(database: Database) -> Iterator[StoredKeys]:
    """What a serving gateway keeps: the stored keys, over a connection of its own."""
    keys = StoredKeys(KeyStore(database))
    yield keys
    keys.close()
