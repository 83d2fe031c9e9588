"""The limiter the workers of one instance share: a SQLite file in their scratch dir.

With `--workers N` the workers are separate processes, so a dict in each would
enforce N limits. They share the supervisor's scratch directory
(`HX_WORKERS_DIR`), and there each decision is one SQLite transaction on one
row per key: `BEGIN IMMEDIATE` takes the file's write lock, the key's state
(`hxgw.keys.window.KeyState`, the memory backend's own code) is read, decided
on and written back, and `COMMIT` lets the next worker in. That is what the
Redis script does, with the file's lock for Redis's single thread.

Why SQLite and not shared memory or a broker process: its lock works across
processes without any code of ours, a worker that dies mid-decision leaves no
lock behind (the journal rolls its transaction back), and it needs no change to
the supervisor. Why not durable: the state is scratch that lives as long as
the daemon (synchronous=OFF, WAL), the way the workers' figures files do.

The transactions run in one thread per limiter: a worker waiting for another's
lock must not stall its event loop, and a single thread keeps the connection to
one user at a time. See docs/limits.md for what a decision costs.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import structlog

from hxgw.keys.limiter_memory import DEFAULT_LEASE, NO_SPEND, PRUNE_EVERY
from hxgw.keys.limits import KeyLimits, LimitDecision, Reservation, ReservationIds, decided
from hxgw.keys.window import KeyState, Spent, first_state
from hxgw.store import write_ahead

log = structlog.get_logger("hxgw.keys.limits")

FILE_NAME = "limits.sqlite3"
BUSY_TIMEOUT_MS = 5000
"""The longest a decision waits for the other workers' transactions (each takes µs)."""
SCHEMA = "CREATE TABLE IF NOT EXISTS keys (name TEXT PRIMARY KEY, doc BLOB, touched REAL)"


class SharedLimiter:
    def __init__(
        self, directory: Path, *, lease_s: float = DEFAULT_LEASE, spent: Spent = NO_SPEND
    ) -> None:
        self.path = directory / FILE_NAME
        self.lease_s = lease_s
        self.spent = spent
        self._new_id = ReservationIds()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="hxgw-limits")
        self._db: sqlite3.Connection | None = None
        self._pruned_at = 0.0

    async def reserve(
        self, key_name: str, limits: KeyLimits, est_tokens: int, est_cost: float, now: float
    ) -> LimitDecision:
        loop = asyncio.get_running_loop()
        deciding = loop.run_in_executor(
            self._thread, self.reserve_now, key_name, limits, est_tokens, est_cost, now
        )
        try:
            return await asyncio.shield(deciding)
        except asyncio.CancelledError:
            # The client left while the thread decided: a reservation made for it is
            # let go at once, not held (and charged) until its lease ends.
            deciding.add_done_callback(self._let_go)
            raise

    def _let_go(self, deciding: asyncio.Future[LimitDecision]) -> None:
        if deciding.cancelled() or deciding.exception() is not None:
            return
        reservation = deciding.result().reservation
        if reservation is not None and not reservation.settled:
            reservation.settled = True
            done = self._thread.submit(self.reconcile_now, reservation, 0, 0.0, time.time())
            done.add_done_callback(_said)

    def reserve_now(
        self, key_name: str, limits: KeyLimits, est_tokens: int, est_cost: float, now: float
    ) -> LimitDecision:
        """One decision, blocking: the body of `reserve`, run in the limiter's thread."""
        rid = self._new_id()
        with self._transaction(key_name, now, limits.budget_period_s) as state:
            refused, retry_after, usage = state.reserve(
                limits, rid, est_tokens, est_cost, now, self.lease_s
            )
        return decided(
            key_name,
            limits,
            rid,
            est_tokens,
            est_cost,
            now,
            refused=refused,
            retry_after=retry_after,
            usage=usage,
            store="shared",
        )

    async def reconcile(
        self,
        reservation: Reservation,
        actual_tokens: int,
        actual_cost: float,
        now: float | None = None,
    ) -> float | None:
        if reservation.settled:
            return None
        reservation.settled = True
        when = time.time() if now is None else now
        loop = asyncio.get_running_loop()
        # Shielded: the correction is queued behind other decisions in the thread, and a
        # client leaving meanwhile must not cancel it.
        return await asyncio.shield(
            loop.run_in_executor(
                self._thread, self.reconcile_now, reservation, actual_tokens, actual_cost, when
            )
        )

    def reconcile_now(
        self, reservation: Reservation, actual_tokens: int, actual_cost: float, now: float
    ) -> float:
        """One correction, blocking: the body of `reconcile`, run in the limiter's thread;
        the key's spend after it, every worker's charges in it."""
        with self._transaction(reservation.key_name, now, reservation.budget_period_s) as state:
            state.reconcile(
                reservation.id,
                reservation.est_cost,
                actual_tokens,
                actual_cost,
                now,
                reservation.at,
            )
            return state.spent

    def release(self, reservation: Reservation) -> None:
        if not reservation.settled:
            reservation.settled = True
            self._thread.submit(self.release_now, reservation, time.time()).add_done_callback(_said)

    def release_now(self, reservation: Reservation, now: float) -> None:
        """One release, blocking, run in the limiter's thread (after every decision and
        correction queued before it)."""
        with self._transaction(reservation.key_name, now, reservation.budget_period_s) as state:
            state.release(reservation.id)

    def set_lease(self, lease_s: float) -> None:
        self.lease_s = lease_s

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close_now)
        self._thread.shutdown(wait=True)

    def _close_now(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            # isolation_level=None: the transactions are ours (BEGIN IMMEDIATE), not the
            # module's implicit ones, which would take the write lock only at the write.
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            write_ahead(db, time.monotonic() + BUSY_TIMEOUT_MS / 1000)  # workers start at once
            db.execute("PRAGMA synchronous = OFF")
            db.execute(SCHEMA)
            self._db = db
        return self._db

    def _transaction(self, key_name: str, now: float, period_s: int) -> _Transaction:
        return _Transaction(self, self._connect(), key_name, now, period_s)

    def prune_due(self, now: float) -> bool:
        if now - self._pruned_at < PRUNE_EVERY:
            return False
        self._pruned_at = now
        return True


def _said(done: Future[Any]) -> None:
    """A correction nobody awaits that failed (the file locked past the busy timeout, say)
    is logged: its reservation holds its slot and estimate until its lease ends."""
    if not done.cancelled() and (error := done.exception()) is not None:
        log.warning(
            "a limits correction failed; its reservation holds until its lease ends",
            error=f"{type(error).__name__}: {error}",
        )


class _Transaction:
    """One key's state, read under the write lock and written back at the end."""

    def __init__(
        self, owner: SharedLimiter, db: sqlite3.Connection, name: str, now: float, period_s: int
    ) -> None:
        self.owner, self.db, self.name, self.now = owner, db, name, now
        self.period_s = period_s
        self.state = KeyState(period_s=period_s)

    def __enter__(self) -> KeyState:
        self.db.execute("BEGIN IMMEDIATE")
        row = self.db.execute("SELECT doc FROM keys WHERE name = ?", (self.name,)).fetchone()
        if row is not None:
            self.state = KeyState.from_doc(orjson.loads(row[0]))
        else:  # no worker has seen the key yet
            self.state = first_state(self.name, self.period_s, self.now, self.owner.spent)
        return self.state

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if error is not None:
            self.db.execute("ROLLBACK")
            return
        try:
            self.db.execute(
                "INSERT OR REPLACE INTO keys (name, doc, touched) VALUES (?, ?, ?)",
                (self.name, orjson.dumps(self.state.to_doc()), self.now),
            )
            if self.owner.prune_due(self.now):
                self._prune()
            self.db.execute("COMMIT")
        except BaseException:
            # Left open, the transaction would keep the file's write lock: every
            # later decision, on every worker, would fail.
            self.db.execute("ROLLBACK")
            raise

    def _prune(self) -> None:
        """Forget keys nobody used for a month (the longest budget period) and a day."""
        self.db.execute("DELETE FROM keys WHERE touched < ?", (self.now - 31 * 86_400,))
