"""What lives for the whole process, across config reloads."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hxgw.deadlines import Deadlines
from hxgw.guard import BadKeyGuard
from hxgw.ids import RequestIds
from hxgw.inflight import Inflight
from hxgw.log import AccessLog
from hxgw.metrics import Metrics
from hxgw.readiness import Readiness
from hxgw.strategies import Memory


@dataclass(slots=True)
class ReloadRecord:
    result: str = "none"
    message: str = ""
    at: float | None = None


class RequestRate:
    """Requests answered, total and per second over the last minute, in one-second
    buckets so that memory stays the same at any rate."""

    def __init__(self) -> None:
        self.total = 0
        self.streams = 0
        self._buckets: deque[list[int]] = deque(maxlen=61)
        self._since = time.monotonic()

    def count(self) -> None:
        self.total += 1
        second = int(time.monotonic())
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([second, 1])

    def snapshot(self, inflight: int) -> dict[str, Any]:
        now = time.monotonic()
        recent = sum(n for second, n in self._buckets if now - second <= 60)
        span = max(1.0, min(60.0, now - self._since))
        return {
            "total": self.total,
            "per_second": round(recent / span, 2),
            "inflight": inflight,
            "active_streams": self.streams,
        }


@dataclass(slots=True)
class Runtime:
    inflight: Inflight = field(default_factory=Inflight)
    memory: Memory = field(default_factory=Memory)
    readiness: Readiness = field(default_factory=Readiness)
    metrics: Metrics = field(init=False)
    started: float = field(default_factory=time.time)
    last_reload: ReloadRecord = field(default_factory=ReloadRecord)
    rate: RequestRate = field(default_factory=RequestRate)
    guard: BadKeyGuard = field(default_factory=BadKeyGuard)
    access: AccessLog = field(default_factory=AccessLog.plain)
    deadlines: Deadlines = field(default_factory=Deadlines)
    ids: RequestIds = field(default_factory=RequestIds)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.memory.health, lambda: len(self.inflight))
