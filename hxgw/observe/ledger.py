"""The usage ledger's own figures, read at scrape time: rows written, spooled while
the store was away, dropped when the spool was full, the spool's size and bound, and
what waits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class LedgerFigures(Protocol):
    """What is read of hxgw.usage.Ledger."""

    @property
    def rows_written(self) -> int: ...
    @property
    def rows_spooled(self) -> int: ...
    @property
    def rows_dropped(self) -> int: ...
    @property
    def spool_bytes(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def spool_max_bytes(self) -> int: ...


class LedgerCollector(Collector):
    def __init__(self, ledger: Callable[[], LedgerFigures | None]) -> None:
        self.ledger = ledger

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        ledger = self.ledger()
        if ledger is None:
            return
        rows = CounterMetricFamily(
            "hxgw_ledger_rows", "Usage ledger rows, by what became of them.", labels=["result"]
        )
        rows.add_metric(["written"], ledger.rows_written)
        rows.add_metric(["spooled"], ledger.rows_spooled)
        rows.add_metric(["dropped"], ledger.rows_dropped)
        yield rows
        yield GaugeMetricFamily(
            "hxgw_ledger_spool_bytes",
            "Bytes of rows in the on-disk spool, waiting for the store.",
            value=ledger.spool_bytes,
        )
        yield GaugeMetricFamily(
            "hxgw_ledger_spool_limit_bytes",
            "The spool's bound (store.spool_max_bytes): past it, the newest rows are dropped.",
            value=ledger.spool_max_bytes,
        )
        yield GaugeMetricFamily(
            "hxgw_ledger_pending_rows", "Rows queued for the next write.", value=ledger.pending
        )


def ledger_status(ledger: LedgerFigures | None) -> dict[str, int] | None:
    """The same figures for /status.json: in an incident, whether rows wait for the
    store (spooled) or were lost (dropped). None: the daemon keeps no ledger."""
    if ledger is None:
        return None
    return {
        "spool_bytes": ledger.spool_bytes,
        "pending_rows": ledger.pending,
        "rows_spooled": ledger.rows_spooled,
        "rows_dropped": ledger.rows_dropped,
    }
