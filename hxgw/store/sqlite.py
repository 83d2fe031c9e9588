"""The embedded store: one SQLite file in WAL mode, shared by the worker processes.

WAL lets readers (`hxgw usage`) run beside the writer; `busy_timeout` makes a writer
wait for another process's transaction instead of failing at once.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hxgw.store.database import (
    Connection,
    Database,
    Dialect,
    NoStore,
    Row,
    RowRefused,
    StoreError,
    StoreTooOld,
)

# A bool is stored as the integer it is either way; without an adapter sqlite3 first
# looks for __adapt__ and __conform__ on it, and each miss raises and drops an
# AttributeError: two per ledger row (stream, disconnected), 10% of its cost.
sqlite3.register_adapter(bool, int)

OLDEST = (3, 25, 0)
"""The oldest SQLite the store works on: the ledger's upserts came in 3.24, the window
functions of the status page's usage charts in 3.25."""


def too_old() -> str | None:
    """Why the SQLite this Python links cannot hold the store, or None when it can."""
    if sqlite3.sqlite_version_info >= OLDEST:
        return None
    return (
        f"the SQLite library this Python links is {sqlite3.sqlite_version}, and the store "
        f"needs {'.'.join(map(str, OLDEST[:2]))} or newer"
    )


class SqliteDatabase(Database):
    dialect: Dialect = "sqlite"

    def __init__(self, path: Path, *, busy_timeout: float = 10.0, create: bool = True) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.create = create

    @property
    def where(self) -> str:
        return f"SQLite {self.path}"

    def connect(self, *, answer_within: float | None = None) -> Connection:
        # `answer_within` is for a server that may stop answering; a local file answers,
        # and another process's lock is waited for `busy_timeout`.
        state_dir = self.path.parent
        if (old := too_old()) is not None:
            raise StoreTooOld(f"{self.where}: {old}")
        try:
            # Even a look is refused in another user's state directory (0750): that is
            # an OSError to say, as much as one from opening the file.
            if state_dir.exists() and not state_dir.is_dir():
                raise StoreError(f"{state_dir} is not a directory (HX_STATE_DIR, store.state_dir)")
            if not self.create and not self.path.is_file():
                raise NoStore(f"no database at {self.path}")
            if self.create:
                self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
                _make_owners_alone(self.path)
            raw = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,  # transactions are begun explicitly, see transaction()
                check_same_thread=False,
            )
            raw.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            write_ahead(raw, time.monotonic() + self.busy_timeout)
            # In WAL mode NORMAL survives a crash of the process; only a power cut can
            # take back the last transactions.
            raw.execute("PRAGMA synchronous=NORMAL")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.where}: {exc}") from exc
        # SQLite has no percentile: median() lets a report read the same on both stores.
        raw.create_aggregate("median", 1, _Median)  # type: ignore[arg-type]  # typeshed: ints only
        return SqliteConnection(raw, self.where)


def _make_owners_alone(path: Path) -> None:
    """Make the database file, when there is none yet, for its owner alone whatever the
    umask (`hxgw keys` run by hand): it holds every key's hash and every app's usage, and
    SQLite gives its WAL and shared-memory files the database's mode.

    Never a descriptor of the database itself: closing any descriptor of a file drops
    every POSIX lock this process holds on it, so opening and closing one beside a live
    connection (another thread's) took that connection's locks, and a reader closing then
    took itself for the last one and deleted the write-ahead log under the ledger's
    writes. The file is made under another name, closed, then linked in if none is there."""
    if path.exists():
        return
    made = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    os.close(os.open(made, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    try:
        os.link(made, path)
    except FileExistsError:
        pass  # another connection made it meanwhile
    finally:
        os.unlink(made)


def write_ahead(raw: sqlite3.Connection, deadline: float) -> None:
    """Put the file in WAL mode. A new file turns to WAL only while no other connection
    has it open, and SQLite says "database is locked" at once then, without waiting as
    `busy_timeout` asks: two workers starting on a new state directory meet this."""
    while True:
        try:
            raw.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


class SqliteConnection(Connection):
    dialect: Dialect = "sqlite"

    def __init__(self, raw: sqlite3.Connection, where: str) -> None:
        self.raw = raw
        self.where = where

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (OverflowError, UnicodeEncodeError) as exc:  # past 64 bits; a lone surrogate
            raise RowRefused(f"{self.where}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"{self.where}: {exc}") from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._errors():
            return self.raw.execute(sql, tuple(params)).fetchall()

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._errors():
            self.raw.executemany(sql, rows)

    def changed(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._errors():
            return self.raw.execute(sql, tuple(params)).rowcount

    @contextmanager
    def transaction(self, *, exclusive: bool = False) -> Iterator[None]:
        # IMMEDIATE takes the write lock up front: a transaction that reads and then
        # writes cannot fail half-way because another process wrote in between.
        with self._errors():
            self.raw.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.raw.execute("COMMIT")
            except BaseException:
                if self.raw.in_transaction:
                    self.raw.rollback()
                raise

    def close(self) -> None:
        self.raw.close()


class _Median:
    def __init__(self) -> None:
        self.values: list[float] = []

    def step(self, value: float | None) -> None:
        if value is not None:
            self.values.append(value)

    def finalize(self) -> float | None:
        return statistics.median(self.values) if self.values else None
