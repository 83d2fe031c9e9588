"""Whether the key store (the SQLite file, or DATABASE_URL's PostgreSQL) is read as it
should be, once a second: read at scrape time, for /metrics and /status.json.

While it is not, the keys read last keep working and a key made since gets 503: the
alert an operator wants before the applications' owners call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class KeyStoreFigures(Protocol):
    """What is read of hxgw.keys.book.StoredKeys."""

    def current(self) -> bool: ...


class KeyStoreCollector(Collector):
    def __init__(self, store: Callable[[], KeyStoreFigures | None]) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        store = self.store()
        if store is None:
            return
        yield GaugeMetricFamily(
            "hxgw_key_store_up",
            "1 while the key store's once-a-second read succeeds; 0 before its first read "
            "and while reads fail (the keys read last keep working, newer ones get 503).",
            value=1.0 if store.current() else 0.0,
        )


def key_store_status(store: KeyStoreFigures | None) -> dict[str, bool] | None:
    """The same for /status.json; None when the daemon reads no key store."""
    return None if store is None else {"reachable": store.current()}
