"""Which store the gateway uses: PostgreSQL when DATABASE_URL names one, else the SQLite
file under the state directory (systemd's `StateDirectory=hxgw` is the default path)."""

from __future__ import annotations

from pathlib import Path

from hxgw.store.database import Database
from hxgw.store.sqlite import SqliteDatabase

DEFAULT_STATE_DIR = Path("/var/lib/hxgw")
SQLITE_FILE = "hxgw.db"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(url: str) -> bool:
    return url.startswith(POSTGRES_SCHEMES)


def open_database(database_url: str | None, state_dir: Path, *, create: bool = True) -> Database:
    """The store for these settings. Nothing is opened yet.

    `create=False` is for readers (`hxgw usage`): a missing SQLite file is then an error
    at connect() rather than a new empty database."""
    if database_url:
        if not is_postgres_url(database_url):
            raise ValueError("DATABASE_URL must start with postgresql:// or postgres://")
        # psycopg is imported only by a gateway that uses PostgreSQL.
        from hxgw.store.postgres import PostgresDatabase

        return PostgresDatabase(database_url)
    return SqliteDatabase(state_dir / SQLITE_FILE, create=create)
