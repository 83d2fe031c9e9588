"""Which key owns each file and batch made through the gateway.

Files and batches are the upstream's objects, all made with the gateway's one
upstream key, so the upstream's lists show every app's. The gateway keeps them
apart: an object belongs to the key that made it (a batch's output and error
files to the batch's owner), recorded here before the answer reaches the
client, so a call that follows at once already finds it. A key other than the
master key reaches only what it owns (hxgw.pipeline.owners).

The table lives in the gateway's database beside the stored keys: the SQLite
file, or PostgreSQL (DATABASE_URL) when several instances must agree. Calls go
to one thread that keeps one connection: files and batches are few and slow
calls. Each call is given CALL_WAIT seconds: a database that hangs (a locked
SQLite file, a PostgreSQL server that stopped answering) is a 503 in bounded
time, and the thread is a daemon's, so neither a stop nor the process's exit
waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import structlog

from hxgw.errors import Unavailable
from hxgw.store import Connection, Database, Migration, StoreError, migrate_database

TABLE = "held_objects"
MIGRATIONS = (
    Migration(
        component="owners",
        version=1,
        description="which key owns each file and batch made through the gateway",
        statements=(
            f"CREATE TABLE {TABLE} ("
            " upstream TEXT NOT NULL,"
            " object_id TEXT NOT NULL,"
            " key_name TEXT NOT NULL,"
            " created DOUBLE PRECISION NOT NULL,"
            " PRIMARY KEY (upstream, object_id))",
        ),
    ),
    Migration(
        component="owners",
        version=2,
        description="a key's objects found without reading every key's",
        statements=(f"CREATE INDEX {TABLE}_by_key ON {TABLE} (upstream, key_name, created)",),
    ),
)
MOST_ID_BYTES = 1024
"""The longest object id kept: with its upstream's name it is the table's key, which
PostgreSQL indexes up to 2704 bytes."""
LOOKUP_CHUNK = 500
"""Ids asked for in one statement: a page of files can hold 10,000."""
CALL_WAIT = 5.0
"""Seconds a call may take (SQLite's busy timeout is 10: a lock held longer is a 503)."""
CLOSE_WAIT = 2.0

T = TypeVar("T")
log = structlog.get_logger("hxgw.keys.owners")


class OwnersUnavailable(Unavailable):
    """The database that says who owns what cannot be reached: a 503, as for any store."""

    code = "store_unavailable"


class Owners:
    def __init__(self, database: Database, *, call_wait: float = CALL_WAIT) -> None:
        self.database, self.call_wait = database, call_wait
        self._calls: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None]
        self._calls = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="hxgw-owners", daemon=True).start()
        self._connection: Connection | None = None
        self._migrated = False

    async def of(self, upstream: str, object_ids: Iterable[str]) -> dict[str, str]:
        """object id -> the key that owns it, for those of `object_ids` that have one (an
        id the store cannot keep has none)."""
        wanted = [i for i in dict.fromkeys(object_ids) if keepable(i)]
        return await self._run(lambda connection: _owners(connection, upstream, wanted))

    async def first_made(self, upstream: str, key: str) -> float | None:
        """When the oldest of the key's objects on `upstream` was recorded (None: it has
        none): what is older on that upstream cannot be the key's."""
        return await self._run(lambda connection: _first_made(connection, upstream, key))

    async def record(self, upstream: str, objects: dict[str, str]) -> None:
        """Record each object (id -> key name) as its key's; one already owned keeps its
        owner, and one whose id the store cannot keep stays no key's."""
        rows = [(upstream, i, key, time.time()) for i, key in objects.items() if keepable(i)]
        if rows:
            await self._run(lambda connection: _insert(connection, rows))

    async def forget(self, upstream: str, object_id: str) -> None:
        """An object the upstream deleted."""
        await self._run(lambda connection: _delete(connection, upstream, object_id))

    async def check(self) -> None:
        """OwnersUnavailable unless the database answers: asked before an object is made
        upstream that could not then be recorded as its key's."""
        await self._run(lambda connection: connection.execute("SELECT 1"))

    async def close(self) -> None:
        """After the calls under way, waiting at most CLOSE_WAIT for them."""
        done = self._submit(self._disconnect)
        self._calls.put(None)
        try:
            async with asyncio.timeout(CLOSE_WAIT):
                await asyncio.wrap_future(done)
        except TimeoutError:
            log.warning(
                "the file owners' database did not answer; left without closing",
                store=self.database.where,
            )

    async def _run(self, work: Callable[[Connection], T]) -> T:
        """`work` on the kept connection, in the owners' thread; OwnersUnavailable when the
        store cannot be reached or does not answer in time (the next call connects again)."""
        call = self._submit(lambda: self._on_connection(work))
        try:
            async with asyncio.timeout(self.call_wait):
                # A call that waited its turn in vain is cancelled before it runs.
                return await asyncio.wrap_future(call)
        except TimeoutError:
            raise OwnersUnavailable(
                "cannot tell which key owns which file or batch: "
                f"{self.database.where} did not answer within {self.call_wait:g} s"
            ) from None
        except StoreError as exc:
            raise OwnersUnavailable(
                f"cannot tell which key owns which file or batch: {exc}"
            ) from exc

    def _submit(self, work: Callable[[], T]) -> Future[T]:
        call: Future[T] = Future()
        self._calls.put((call, work))
        return call

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            call, work = item
            if not call.set_running_or_notify_cancel():
                continue
            try:
                call.set_result(work())
            except BaseException as exc:  # the caller's to raise, whatever it is
                call.set_exception(exc)

    def _on_connection(self, work: Callable[[Connection], T]) -> T:
        try:
            if self._connection is None:
                if not self._migrated:
                    migrate_database(self.database, MIGRATIONS)
                    self._migrated = True
                self._connection = self.database.connect()
            return work(self._connection)
        except StoreError:
            self._disconnect()
            raise

    def _disconnect(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(StoreError):  # a broken one may not close; it is gone
                self._connection.close()
            self._connection = None


def keepable(object_id: str) -> bool:
    """Whether the store can keep `object_id`, an upstream's, as it is: PostgreSQL takes no
    NUL in a text, nor a key past what its index holds. Either had made every key's list
    that held such an object a 503 that blamed the database. SQLite, which would keep
    both, keeps neither too: an object is owned alike whichever store holds it."""
    return "\x00" not in object_id and len(object_id.encode()) <= MOST_ID_BYTES


def _owners(connection: Connection, upstream: str, ids: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for at in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[at : at + LOOKUP_CHUNK]
        marks = ", ".join("?" for _ in chunk)
        rows = connection.execute(
            f"SELECT object_id, key_name FROM {TABLE}"  # noqa: S608 -- marks, not values
            f" WHERE upstream = ? AND object_id IN ({marks})",
            (upstream, *chunk),
        )
        found.update((str(ident), str(key)) for ident, key in rows)
    return found


def _first_made(connection: Connection, upstream: str, key: str) -> float | None:
    [(first,)] = connection.execute(
        f"SELECT MIN(created) FROM {TABLE} WHERE upstream = ? AND key_name = ?",  # noqa: S608
        (upstream, key),
    )
    return None if first is None else float(first)


def _insert(connection: Connection, rows: list[tuple[str, str, str, float]]) -> None:
    with connection.transaction():
        connection.executemany(
            f"INSERT INTO {TABLE} (upstream, object_id, key_name, created)"  # noqa: S608
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            rows,
        )


def _delete(connection: Connection, upstream: str, object_id: str) -> None:
    with connection.transaction():
        connection.execute(
            f"DELETE FROM {TABLE} WHERE upstream = ? AND object_id = ?",  # noqa: S608
            (upstream, object_id),
        )
