"""The shared limits store's own figures, read at scrape time: whether Redis answers,
and how many calls to it failed. Exported only when the limits live in Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class LimitsStoreFigures(Protocol):
    """What is read of hxgw.keys.limiter_redis.RedisLimiter."""

    @property
    def reachable(self) -> bool: ...
    @property
    def failures(self) -> int: ...


class LimitsStoreCollector(Collector):
    def __init__(self, store: Callable[[], LimitsStoreFigures | None]) -> None:
        self.store = store

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        store = self.store()
        if store is None:
            return
        yield GaugeMetricFamily(
            "hxgw_limits_store_up",
            "1 while the shared limits store (Redis) answers; 0 from a failed call or "
            "ping (every 5 s) until one is answered again.",
            value=1.0 if store.reachable else 0.0,
        )
        yield CounterMetricFamily(
            "hxgw_limits_store_failures",
            "Calls to the shared limits store that failed (no answer in time, a lost "
            "connection, an error reply), the connect at the start too; the requests they "
            "decided went as limits_store.fail_open says.",
            value=store.failures,
        )


def limits_store_status(store: LimitsStoreFigures | None) -> dict[str, object]:
    """The same for /status.json. Without Redis the limits live on this host (its memory,
    or the workers' shared file), which cannot be away."""
    if store is None:
        return {"kind": "local", "reachable": True}
    return {"kind": "redis", "reachable": store.reachable, "failures": store.failures}
