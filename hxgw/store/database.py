"""What every store offers: a `Database` that connects and migrates, a `Connection` that runs
SQL written with `?` placeholders, and the one error a caller has to handle."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Literal

Dialect = Literal["sqlite", "postgresql"]
Row = tuple[Any, ...]


class StoreError(Exception):
    """The store is unreachable or refused a statement; the message names the store.

    Callers that must not lose data (the ledger) keep the rows and try again later, but
    for a `RowRefused`."""


class RowRefused(StoreError):
    """The store refused what a statement holds (a number out of its range), not the
    statement's coming: trying the same again later would fail again."""


class StoreTooOld(StoreError):
    """The store's software is older than what the schema uses (SQLite before 3.25): no
    retry or other path mends it."""


class NoStore(StoreError):
    """A reader found no store to read: the SQLite file does not exist."""


class Connection(ABC):
    """One session with the store. Not shared between threads."""

    dialect: Dialect

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement; the rows it returns (none for a write)."""

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter row."""

    @abstractmethod
    def changed(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write; how many rows it inserted or updated."""

    @abstractmethod
    def transaction(self, *, exclusive: bool = False) -> AbstractContextManager[None]:
        """Commit on a clean exit, roll back on an exception.

        `exclusive` serialises the transaction against every other exclusive one on the
        same store, from any process (schema migrations run this way)."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class Database(ABC):
    """Where the data lives. Cheap to create: nothing is opened before `connect()`."""

    dialect: Dialect

    @property
    @abstractmethod
    def where(self) -> str:
        """The store, as a message may name it (never with a password)."""

    @abstractmethod
    def connect(self, *, answer_within: float | None = None) -> Connection:
        """A new session; raises StoreError when the store cannot be reached.

        `answer_within`: seconds after which a store that has not answered a statement is
        taken for unreachable (StoreError), the session closed; by default the store's
        own bound. A migration's transaction lifts it."""
