"""The usage series the status page shows, read off the event loop and kept a few seconds.

The page refreshes every 5 s, in every open browser, from every worker: each worker reads
a window at most once per its `refresh` (the hour every 3 s, the day every minute), in a
thread with a connection of its own (sqlite3 and psycopg block), and concurrent pages
wait for the same read.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from hxgw.store import Database, StoreError
from hxgw.usage.ledger import Ledger
from hxgw.usage.series import LATENCY_SAMPLES, WINDOWS, Window, usage_series


class RecentUsage:
    """/status.json's `usage`: the ledger's last hour and day, or why there is none."""

    def __init__(
        self, ledger: Callable[[], Ledger | None], *, windows: tuple[Window, ...] = WINDOWS
    ) -> None:
        self._ledger = ledger
        self.windows = windows
        self._soonest = min(window.refresh for window in windows)
        """The shortest a read is kept: a store that failed is asked again after this."""
        self._value: dict[str, Any] | None = None
        self._value_at = -math.inf
        self._series: dict[str, tuple[float, dict[str, Any]]] = {}
        """Each window's last read: when (monotonic), and its series."""
        self._lock = asyncio.Lock()

    async def read(self) -> dict[str, Any]:
        ledger = self._ledger()
        if ledger is None:
            return {"ledger": "off"}
        async with self._lock:
            now = time.monotonic()
            due = [
                w for w in self.windows if now - self._series.get(w.name, _NEVER)[0] >= w.refresh
            ]
            if self._value is not None and (not due or now - self._value_at < self._soonest):
                return self._value  # nothing due, or the store failed a moment ago
            value = await asyncio.to_thread(read_windows, ledger.database, time.time(), due)
            if value["ledger"] == "on":
                for window in due:
                    series = value["windows"][window.name]
                    # Rows reach the store one batch after their request, then wait here.
                    series["behind_seconds_at_most"] = ledger.batch_interval + window.refresh
                    self._series[window.name] = (now, series)
                value["windows"] = {w.name: self._series[w.name][1] for w in self.windows}
                value["behind_seconds_at_most"] = ledger.batch_interval + self._soonest
            else:
                self._series.clear()  # every window again once the store answers
            self._value, self._value_at = value, now
            return value


_NEVER: tuple[float, dict[str, Any]] = (-math.inf, {})


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
