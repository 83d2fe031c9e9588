"""The usage series the status page shows, read off the event loop and kept a few seconds.

The page refreshes every 5 s, in every open browser, from every worker: each worker reads
the store at most once per `ttl`, in a thread with a connection of its own (sqlite3 and
psycopg block), and concurrent pages wait for the same read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from hxgw.store import Database, StoreError
from hxgw.usage.ledger import Ledger
from hxgw.usage.series import LATENCY_SAMPLES, WINDOWS, usage_series

TTL = 3.0
"""Seconds a read is kept: with the ledger's 1 s batches, the charts are at most 4 s behind."""


class RecentUsage:
    """/status.json's `usage`: the ledger's last hour and day, or why there is none."""

    def __init__(self, ledger: Callable[[], Ledger | None], *, ttl: float = TTL) -> None:
        self._ledger = ledger
        self.ttl = ttl
        self._value: dict[str, Any] | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    async def read(self) -> dict[str, Any]:
        ledger = self._ledger()
        if ledger is None:
            return {"ledger": "off"}
        async with self._lock:
            if self._value is None or time.monotonic() - self._read_at >= self.ttl:
                value = await asyncio.to_thread(read_windows, ledger.database, time.time())
                # Rows reach the store one batch after their request, then wait here.
                value["behind_seconds_at_most"] = ledger.batch_interval + self.ttl
                self._value = value
                self._read_at = time.monotonic()
            return self._value


def read_windows(database: Database, now: float) -> dict[str, Any]:
    """Every window as of `now`, on a connection opened and closed here; a store that
    cannot be read gives `ledger: "unreachable"` and the reason, not an error."""
    try:
        with database.connect() as connection:
            windows = {window.name: usage_series(connection, window, now) for window in WINDOWS}
    except StoreError as exc:
        return {"ledger": "unreachable", "error": str(exc)}
    return {
        "ledger": "on",
        "as_of": now,
        "latency_samples": LATENCY_SAMPLES,
        "windows": windows,
    }
