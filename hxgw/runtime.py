"""What lives for the whole process, across config reloads."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hxgw.keys import Limiter
from hxgw.keys.book import StoredKeys
from hxgw.keys.guard import BadKeyGuard
from hxgw.keys.limiter_memory import MemoryLimiter
from hxgw.keys.limiter_redis import RedisLimiter
from hxgw.keys.owners import Owners
from hxgw.observe import AccessLog, Metrics, RequestIds
from hxgw.observe.key_store import KeyStoreCollector
from hxgw.observe.ledger import LedgerCollector
from hxgw.observe.limits_store import LimitsStoreCollector
from hxgw.observe.loop_lag import LoopLag
from hxgw.observe.readiness import Readiness
from hxgw.observe.saturation import SaturationCollector
from hxgw.observe.workers import WorkerFigures
from hxgw.routing.strategies import Memory
from hxgw.upstream import Gates
from hxgw.upstream.deadlines import Deadlines
from hxgw.usage import Ledger, RecentUsage

HOP_ENV = "HX_GATEWAY_HOP"
"""The environment variable by which a supervisor gives its workers its Via entry."""


def new_hop() -> str:
    """A Via entry of this gateway's own: a pseudonym, as RFC 9110 allows."""
    return f"1.1 hxgw-{secrets.token_hex(6)}"


class Inflight:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()
        # Made only while shutdown waits: an Event cleared on every request and set at
        # every lull cost two method calls per request for a wait that happens once.
        self._idle: asyncio.Future[None] | None = None
        self.draining = False

    def __len__(self) -> int:
        return len(self._tasks)

    def add(self, task: asyncio.Task[object]) -> None:
        self._tasks.add(task)

    def discard(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not self._tasks and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    async def wait_idle(self, seconds: float) -> bool:
        """True when every request finished within `seconds`."""
        if not self._tasks:
            return True
        self._idle = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(seconds):
                await self._idle
        except TimeoutError:
            return False
        finally:
            self._idle = None
        return True

    def cancel_all(self) -> int:
        for task in self._tasks:
            task.cancel()
        return len(self._tasks)


@dataclass(slots=True)
class ReloadRecord:
    result: str = "none"
    message: str = ""
    at: float | None = None


class RequestRate:
    """Requests answered: the total, and per second over the last minute.

    A request only adds one to `total`: the clock is read once a second, by `tick`,
    which keeps what the total was then. Reading it on every request, to put the
    request in its second, cost 1% of a request's instructions."""

    WINDOW = 60.0

    def __init__(self, since: float | None = None) -> None:
        self.total = 0
        self.streams = 0
        self._ticks: deque[tuple[float, int]] = deque(maxlen=int(self.WINDOW) + 2)
        self._since = time.monotonic() if since is None else since

    def tick(self, now: float | None = None) -> None:
        """Note the total as of `now` (the monotonic clock); called about once a second."""
        self._ticks.append((time.monotonic() if now is None else now, self.total))

    def snapshot(self, inflight: int, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        # Against the oldest tick within the window; before the first, since the start.
        then, before = self._since, 0
        for at, total in self._ticks:
            if now - at <= self.WINDOW:
                then, before = at, total
                break
        return {
            "total": self.total,
            "per_second": round((self.total - before) / max(1.0, now - then), 2),
            "inflight": inflight,
            "active_streams": self.streams,
        }


@dataclass(slots=True)
class Runtime:
    inflight: Inflight = field(default_factory=Inflight)
    memory: Memory = field(default_factory=Memory)
    readiness: Readiness = field(default_factory=Readiness)
    metrics: Metrics = field(init=False)
    saturation: SaturationCollector = field(init=False)
    started: float = field(default_factory=time.time)
    last_reload: ReloadRecord = field(default_factory=ReloadRecord)
    rate: RequestRate = field(default_factory=RequestRate)
    guard: BadKeyGuard = field(default_factory=BadKeyGuard)
    access: AccessLog = field(default_factory=AccessLog.plain)
    deadlines: Deadlines = field(default_factory=Deadlines)
    gates: Gates = field(default_factory=Gates)
    limiter: Limiter = field(default_factory=MemoryLimiter)
    """The keys' limits; the daemon opens the one its config and workers call for."""
    ledger: Ledger | None = None
    """The usage ledger; None when the daemon has none (its state directory is unusable)."""
    stored_keys: StoredKeys | None = None
    """The keys `hxgw keys` made; None when the daemon has no store."""
    owners: Owners | None = None
    """Which key made each file and batch; None when the daemon has no store."""
    ids: RequestIds = field(default_factory=RequestIds)
    figures: WorkerFigures | None = None
    """With several workers: this one's figures, shared with the others."""
    loop_lag: LoopLag = field(default_factory=LoopLag)
    listening: str = ""
    """host:port the server listens on: a changed listen address waits for a restart, so
    the config's may say another."""
    hop: str = ""
    """This gateway's entry in the Via header of what it sends upstream (`pipeline.loops`):
    its own for each `hxgw serve` (`new_hop`), which its workers share (`HOP_ENV`)."""
    recent_usage: RecentUsage = field(init=False)
    """The status page's usage charts, read from the ledger's store and kept a few seconds."""

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.memory.health, lambda: len(self.inflight))
        self.metrics.loop_lag.set_function(lambda: self.loop_lag.seconds)
        self.saturation = SaturationCollector(self.gates)
        self.recent_usage = RecentUsage(lambda: self.ledger)
        self.metrics.registry.register(self.saturation)
        self.metrics.registry.register(LedgerCollector(lambda: self.ledger))
        self.metrics.registry.register(LimitsStoreCollector(self.redis_limiter))
        self.metrics.registry.register(KeyStoreCollector(lambda: self.stored_keys))

    def redis_limiter(self) -> RedisLimiter | None:
        limiter = self.limiter
        return limiter if isinstance(limiter, RedisLimiter) else None
