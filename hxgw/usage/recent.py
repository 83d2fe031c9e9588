"""The usage series the status page shows, read off the event loop and kept a few seconds.

The page refreshes every 5 s, in every open browser, from every worker: each worker reads
the store at most every 3 s, in a thread with a connection of its own (sqlite3 and
psycopg block), and concurrent pages wait for the same read. A window is read whole at
most once per its `refresh` (the hour every 3 s, the day every minute); in between, only
its last bucket is read and put in place of the old one, so the day's chart is as fresh
as the hour's for the cost of a scan of one hour, not of a day.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from hxgw.store import Database, StoreError
from hxgw.usage.ledger import Ledger
from hxgw.usage.series import (
    LATENCY_SAMPLES,
    WINDOWS,
    Window,
    last_bucket,
    usage_series,
    with_last,
)


class RecentUsage:
    """/status.json's `usage`: the ledger's last hour and day, or why there is none."""

    def __init__(
        self, ledger: Callable[[], Ledger | None], *, windows: tuple[Window, ...] = WINDOWS
    ) -> None:
        self._ledger = ledger
        self.windows = windows
        self._soonest = min(window.refresh for window in windows)
        """How long any read is kept: the last bucket of a window read whole less often
        (the day) is read again this often, and a store that failed is asked again."""
        self._value: dict[str, Any] | None = None
        self._value_at = -math.inf
        self._whole_at: dict[str, float] = {}
        """When each window was last read whole (monotonic)."""
        self._lock = asyncio.Lock()

    async def read(self) -> dict[str, Any]:
        ledger = self._ledger()
        if ledger is None:
            return {"ledger": "off"}
        async with self._lock:
            now = time.monotonic()
            if self._value is not None and now - self._value_at < self._soonest:
                return self._value
            whole = [
                w for w in self.windows if now - self._whole_at.get(w.name, -math.inf) >= w.refresh
            ]
            last = [w for w in self.windows if w not in whole]
            value = await asyncio.to_thread(_read, ledger.database, time.time(), whole, last)
            if value["ledger"] == "on":
                value["windows"] = self._merged(value["windows"], whole, now)
                # Rows reach the store one batch after their request, then wait here.
                value["behind_seconds_at_most"] = ledger.batch_interval + self._soonest
            else:
                self._whole_at.clear()  # every window whole once the store answers
            self._value, self._value_at = value, now
            return value

    def _merged(
        self, read: dict[str, dict[str, Any]], whole: list[Window], now: float
    ) -> dict[str, dict[str, Any]]:
        """Windows read whole as they are; the others' last buckets put in what was read
        of them before."""
        previous = self._value["windows"] if self._value and "windows" in self._value else {}
        merged = {}
        for window in self.windows:
            if window in whole:
                self._whole_at[window.name] = now
                merged[window.name] = read[window.name]
                continue
            spliced = with_last(previous[window.name], read[window.name])
            if spliced is None:  # a new bucket began: this window whole, next time
                self._whole_at.pop(window.name, None)
                spliced = previous[window.name]
            merged[window.name] = spliced
        return merged


def _read(
    database: Database, now: float, whole: list[Window], last: list[Window]
) -> dict[str, Any]:
    """The `whole` windows, and the last bucket alone of the `last` ones, under their names."""
    return read_windows(database, now, [*whole, *map(last_bucket, last)])


def read_windows(
    database: Database, now: float, windows: Iterable[Window] = WINDOWS
) -> dict[str, Any]:
    """The windows as of `now`, on a connection opened and closed here; a store that
    cannot be read gives `ledger: "unreachable"` and the reason, not an error."""
    try:
        with database.connect() as connection:
            series = {window.name: usage_series(connection, window, now) for window in windows}
    except StoreError as exc:
        return {"ledger": "unreachable", "error": str(exc)}
    return {
        "ledger": "on",
        "as_of": now,
        "latency_samples": LATENCY_SAMPLES,
        "windows": series,
    }
