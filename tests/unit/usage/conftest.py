from __future__ import annotations

from pathlib import Path

import pytest

from hxgw.store import Database, open_database
from tests.postgres import own_postgres, postgres_server, postgres_url

__all__ = ["database", "own_postgres", "postgres_server", "postgres_url"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """An empty store: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return open_database(None, tmp_path / "state")
    return open_database(request.getfixturevalue("postgres_url"), tmp_path)
