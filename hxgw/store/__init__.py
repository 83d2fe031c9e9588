"""The gateway's own database: SQLite by default, PostgreSQL for several instances.

`open_database` picks the store (DATABASE_URL, else a SQLite file under the state
directory); `Database.connect()` gives a `Connection` whose SQL uses `?` placeholders on
both stores; `migrate_database(database, steps)` brings a schema up to its newest
version. The usage ledger, the key store and the owners of files and batches keep their
tables here (`sqlite`, `postgres`: the two stores; `locate` finds the one configured).

May import: the standard library and psycopg; nothing else of hxgw.
"""

from hxgw.store.database import (
    Connection,
    Database,
    Dialect,
    NoStore,
    RowRefused,
    StoreError,
    StoreTooOld,
)
from hxgw.store.locate import DEFAULT_STATE_DIR, SQLITE_FILE, open_database
from hxgw.store.migrate import Migration, migrate_database
from hxgw.store.sqlite import too_old, write_ahead

__all__ = [
    "DEFAULT_STATE_DIR",
    "SQLITE_FILE",
    "Connection",
    "Database",
    "Dialect",
    "Migration",
    "NoStore",
    "RowRefused",
    "StoreError",
    "StoreTooOld",
    "migrate_database",
    "open_database",
    "too_old",
    "write_ahead",
]
