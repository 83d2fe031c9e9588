"""The ledger: rows recorded from the event loop, written by a thread in batches.

`record()` (or `record_values()`, what the request path calls) appends a row's values to
a deque and returns: the request never waits on the store. The
writer thread wakes every `batch_interval` (or as soon as `batch_rows` rows wait) and
writes what is there in transactions of at most `batch_rows` rows. sqlite3 and psycopg
block, and a thread keeps them off the loop without an async driver.

When a write fails the rows go to the spool (hxgw.usage.spool) and the store is retried
after a back-off that doubles up to `max_backoff`; until then new batches go to the
spool, and what a full spool refuses to the store. When the store answers again the
spool is replayed first, in order.

A store that does not answer a write within `answer_within` seconds (a frozen server,
which no timeout of TCP's fires for) is unreachable like one that refuses it.

What a crash (SIGKILL, power loss aside) can lose: the rows recorded since the last flush,
at most one batch interval's worth, plus a batch the thread was writing at that moment
(for at most `answer_within`). A stop while the writer waits loses none: close() spools
what the writer holds.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import structlog

from hxgw.store import Connection, Database, RowRefused, StoreError
from hxgw.store.migrate import migrate
from hxgw.usage.keeping import Keeper
from hxgw.usage.once import Added, OnceRows, write_once
from hxgw.usage.row import UsageRow, Values
from hxgw.usage.schema import BILLED_AS, INSERT, MIGRATIONS
from hxgw.usage.spool import Spool

log = structlog.get_logger("hxgw.usage")

ANSWER_WITHIN = 5.0
"""Seconds a write may wait for the store's answer before the store is taken for
unreachable and its rows spooled: a frozen server would otherwise hold them in memory,
for a crash to take, as long as it stays frozen."""


class Ledger:
    def __init__(
        self,
        database: Database,
        spool_dir: Path,
        *,
        batch_interval: float = 1.0,
        batch_rows: int = 500,
        spool_max_bytes: int = 256 << 20,
        max_backoff: float = 10.0,
        answer_within: float = ANSWER_WITHIN,
        on_billed: Callable[[Added], None] | None = None,
    ) -> None:
        self.database = database
        self.answer_within = answer_within
        self.batch_interval = batch_interval
        self.batch_rows = batch_rows
        self.max_backoff = max_backoff
        self.spool = Spool(spool_dir, spool_max_bytes)
        self.keeper = Keeper(self.spool)
        self.rows_written = 0  # for /metrics; only the writer thread changes it
        self.on_billed = on_billed
        """Told, from the writer thread, what each row billed apart added once written."""
        self._pending: deque[Values] = deque()
        self._once = OnceRows()
        self._writing: list[Values] = []
        """The recorded rows the writer thread is handing to the store, and those after."""
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hxgw-ledger", daemon=True)
        self._connection: Connection | None = None
        self._migrated = False
        self._retry_at = 0.0
        self._backoff = 0.0
        self._failing = False

    @property
    def spool_bytes(self) -> int:
        """Measured now: the directory is shared, and another worker's replay (or an
        operator's move) empties it while this one's last measure stays as it was."""
        return self.spool.size()

    @property
    def spool_max_bytes(self) -> int:
        return self.spool.max_bytes

    @property
    def rows_spooled(self) -> int:
        return self.keeper.spooled

    @property
    def rows_dropped(self) -> int:
        return self.keeper.dropped

    @property
    def pending(self) -> int:
        """Rows recorded and not yet handed to the store or the spool."""
        return len(self._pending)

    def start(self) -> None:
        self._thread.start()

    def record(self, row: UsageRow) -> None:
        """Queue a row; never blocks and never touches the store. Event-loop safe."""
        self.record_values(row.values())

    def record_values(self, row: Values) -> None:
        """Queue a row given as its values in COLUMNS order; as `record`."""
        self._pending.append(row)
        if len(self._pending) >= self.batch_rows and not self._wake.is_set():
            self._wake.set()

    def record_once(self, row: Values) -> bool:
        """Queue a row billed by whichever answer first carries it, unless it was queued
        lately (hxgw.usage.once); whether it was. The store keeps one row per key
        whatever comes twice (another worker's, or one from before a restart), and
        `on_billed` hears what it took."""
        queued = self._once.take(row)
        if queued:
            self.record_values(row)
        return queued

    def close(self, timeout: float | None = None) -> bool:
        """Write what is queued (to the spool if the store is away) and stop the writer.

        Returns False when the writer was still busy after `timeout` seconds: its rows
        then go to the spool from here. Rows recorded after close() are not written."""
        self._closing.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._rescue()
        elif self._thread.ident is None:
            self._flush(final=True)  # never started: flush here
            self._stop()
        return not self._thread.is_alive()

    def _rescue(self) -> None:
        """The writer is stuck on a store that has not answered yet: the rows it holds and
        those queued go to the spool from here."""
        self.keeper.rescue([*self._writing, *self._take()])

    def _run(self) -> None:
        while True:
            # Read before the flush: a close() during it gets one more, final, flush.
            final = self._closing.is_set()
            try:
                self._flush(final=final)
            except Exception:  # the writer must outlive any bug, or every later row is lost
                log.exception("usage ledger writer failed")
            if final:
                break
            self._wake.wait(self.batch_interval)
            self._wake.clear()
        self._stop()

    def _stop(self) -> None:
        self._disconnect()
        self.spool.close()

    def _take(self) -> list[Values]:
        count = len(self._pending)
        return [self._pending.popleft() for _ in range(count)]

    def _flush(self, *, final: bool) -> None:
        rows = self._take()
        if not final and time.monotonic() < self._retry_at:
            # What the spool refuses is offered to the store before it is lost: the
            # store may be back before its retry is due.
            rows = self.keeper.spool_some(rows)
            if not rows:
                return
        self._writing = rows  # from here a stop spools them, even while the spool replays
        done = replayed = 0
        try:
            self._connect()  # also at start with no rows: the schema is migrated early
            if self.spool.waiting:
                replayed = self._replay()
            while done < len(rows):
                self._writing = rows[done:]
                self._write_batch(rows[done : done + self.batch_rows])
                done += self.batch_rows
            self._writing = []
            # Back only once a row went in: a store that takes connections and refuses
            # writes (a full disk) had been said to be back at every retry with none.
            if rows or replayed:
                self._recovered()
            return
        except StoreError as exc:
            self._writing = []
            self._failed(exc)
        self.keeper.keep(rows[done:])

    def _replay(self) -> int:
        """The spool's rows, before the new ones; how many. A spool that fails to be read
        is not the store's failure: its rows wait there, and the new ones go to the
        store."""
        try:
            replayed = self.spool.replay(self._write_batch, self.batch_rows)
        except OSError as exc:
            self.spool.waiting = False  # tried again once the spool takes new rows
            log.error(
                "the usage spool cannot be replayed",
                error=str(exc),
                spool=str(self.spool.directory),
            )
            return 0
        if replayed:
            log.info("usage spool replayed", rows=replayed, store=self.database.where)
        return replayed

    def _write_batch(self, rows: list[Values]) -> None:
        """A batch, or, when one of its rows is refused for what it holds (not for the
        store's absence), each row alone: one bad row must not take the others with it,
        nor, kept to be tried again, block every row after it."""
        try:
            self._write(rows)
        except RowRefused:
            for row in rows:
                try:
                    self._write([row])
                except RowRefused as exc:
                    self.keeper.dropped += 1
                    log.error("usage row refused by the store", request_id=row[0], error=str(exc))

    def _write(self, rows: list[Values]) -> None:
        connection = self._connect()
        with connection.transaction():
            connection.executemany(INSERT, [r for r in rows if not r[0].startswith(BILLED_AS)])
            # One at a time, each billed apart is told what the store took of it.
            added = [write_once(connection, r) for r in rows if r[0].startswith(BILLED_AS)]
        self.rows_written += len(rows)
        if self.on_billed is not None:
            for each in added:
                if each is not None:
                    self.on_billed(each)

    def _connect(self) -> Connection:
        if self._connection is None:
            connection = self.database.connect(answer_within=self.answer_within)
            try:
                if not self._migrated:
                    migrate(connection, MIGRATIONS)
                    self._migrated = True
            except StoreError:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception as exc:  # a broken connection may fail to close; it is gone anyway
                log.debug("usage store connection close failed", error=str(exc))
            self._connection = None

    def _failed(self, exc: Exception) -> None:
        self._disconnect()
        self._backoff = min(max(self._backoff * 2, self.batch_interval), self.max_backoff)
        self._retry_at = time.monotonic() + self._backoff
        if not self._failing:
            log.warning("usage store unreachable, spooling rows", error=str(exc))
        self._failing = True

    def _recovered(self) -> None:
        self.keeper.store_takes_rows()
        if self._failing:
            log.info("usage store reachable again", store=self.database.where)
        self._failing = False
        self._backoff = 0.0
        self._retry_at = 0.0
