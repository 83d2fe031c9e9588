"""How many requests each upstream may have at once, and who waits for a turn.

Every upstream has its own cap (`upstreams.<name>.max_concurrent`), so a slow
or stuck upstream fills only its own share: the others' requests never wait
behind it. A request that finds its upstream at the cap waits in a bounded
queue, first come first served, for at most `queue_timeout`; when the queue is
full, or the wait runs out, it is shed with `GateFull` and the forward step
moves on to the next candidate, or answers 503. Nothing waits silently: the
time queued, the queue's length and every shed request are counted here and
reported by the metrics, the access line and /status.

A slot is held from the moment a request is admitted until its upstream
connection is idle again or its socket is gone, so the cap bounds open sockets
as well as requests in flight.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

import structlog


class GateSettings(Protocol):
    """What a gate takes of an upstream's settings (the config's Upstream has them)."""

    @property
    def name(self) -> str: ...
    @property
    def max_concurrent(self) -> int | None: ...
    @property
    def max_queued(self) -> int: ...
    @property
    def queue_timeout(self) -> float: ...


log = structlog.get_logger("hxgw.upstream.admission")

WARN_EVERY = 60.0
"""While an upstream sheds requests, one warning per this many seconds."""


class GateFull(Exception):
    """The upstream is at its cap and the request could not wait for a turn."""

    def __init__(self, upstream: str, reason: str, retry_after: int, waited: float = 0.0) -> None:
        super().__init__(f"the gateway is at capacity for upstream {upstream!r}: {reason}")
        self.upstream = upstream
        self.reason = reason
        self.retry_after = retry_after
        self.waited = waited
        """The seconds it waited in the queue before it gave up."""


class Gate:
    """One upstream's cap on requests in flight, and its queue."""

    def __init__(self, name: str, cap: int, max_queued: int, queue_timeout: float) -> None:
        self.name = name
        self.cap = cap
        self.max_queued = max_queued
        self.queue_timeout = queue_timeout
        self.in_use = 0
        self.shed = 0
        self.waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._shed_since_warning = 0
        self._warned_at = -math.inf

    def configure(self, cap: int, max_queued: int, queue_timeout: float) -> None:
        """New settings from a reload; a larger cap lets waiting requests in at once."""
        self.cap, self.max_queued, self.queue_timeout = cap, max_queued, queue_timeout
        # A turn whose wait has just run out is still in the queue: only a request
        # really handed a slot counts.
        while self.in_use < self.cap and self._hand_over():
            self.in_use += 1

    async def enter(self) -> float:
        """Take a slot; return the seconds spent waiting for it (0.0 when there was one).

        Raises GateFull when the queue is full or the wait passes `queue_timeout`."""
        if self.in_use < self.cap and not self.waiting:
            self.in_use += 1
            return 0.0
        if len(self.waiting) >= self.max_queued:
            raise self._shed(f"{len(self.waiting)} requests already wait for a turn")
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        self.waiting.append(turn)
        started = time.perf_counter()
        expiry = loop.call_later(self.queue_timeout, _expire, turn)
        try:
            await turn
        except BaseException as exc:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self.leave()  # handed a slot just as the wait ended: pass it on
            else:
                _discard(self.waiting, turn)
            if isinstance(exc, _QueueTimeout):
                waited = time.perf_counter() - started
                reason = f"no turn within queue_timeout ({waited:.3f} s waited)"
                raise self._shed(reason, waited) from None
            raise
        finally:
            expiry.cancel()
        return time.perf_counter() - started

    def saturation(self) -> dict[str, int]:
        """How full it is, as /status and the metrics say it."""
        return {
            "in_use": self.in_use,
            "cap": self.cap,
            "queued": len(self.waiting),
            "shed": self.shed,
        }

    def leave(self) -> None:
        """Give a slot back: to the first request still waiting, else to the pool."""
        if self.in_use > self.cap or not self._hand_over():
            self.in_use -= 1

    def _hand_over(self) -> bool:
        while self.waiting:
            turn = self.waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return True
        return False

    def out_of_time(self, waited: float) -> GateFull:
        """A request whose first-byte time ran out while it waited for a turn: shed, as
        one whose queue_timeout did (the model it was for did nothing wrong)."""
        return self._shed(f"no turn within the first-byte timeout ({waited:.3f} s waited)", waited)

    def _shed(self, reason: str, waited: float = 0.0) -> GateFull:
        self.shed += 1
        self._shed_since_warning += 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            log.warning(
                "upstream at capacity, shedding requests",
                upstream=self.name,
                cap=self.cap,
                queued=len(self.waiting),
                shed=self._shed_since_warning,
                reason=reason,
            )
            self._warned_at, self._shed_since_warning = now, 0
        retry_after = max(1, math.ceil(self.queue_timeout))
        return GateFull(self.name, reason, retry_after, waited)


class Gates(Mapping[str, Gate]):
    """The gate of every configured upstream, kept across reloads: requests in
    flight hold slots in them, so a reload changes a gate's settings in place."""

    def __init__(self) -> None:
        self._gates: dict[str, Gate] = {}
        self._removed: dict[str, Gate] = {}
        """The gates of upstreams a reload removed: requests begun on the config before
        finish on it, their failover to such an upstream included."""
        self.capacity = 0
        """The streams the upstreams without their own cap share."""

    def configure(self, upstreams: Iterable[GateSettings], capacity: int) -> None:
        """Set each upstream's gate; an upstream without `max_concurrent` gets an
        equal share of what those with one leave of `capacity`, the streams this process
        can hold."""
        upstreams, self.capacity = list(upstreams), capacity
        uncapped = [u for u in upstreams if not u.max_concurrent]
        left = capacity - sum(u.max_concurrent or 0 for u in upstreams)
        share = max(1, left // max(1, len(uncapped)))
        for name in self._gates.keys() - {u.name for u in upstreams}:
            self._removed[name] = self._gates.pop(name)
        for upstream in upstreams:
            cap = upstream.max_concurrent or share
            gate = self._gates.get(upstream.name) or self._removed.pop(upstream.name, None)
            if gate is None:
                gate = Gate(upstream.name, cap, upstream.max_queued, upstream.queue_timeout)
            else:
                gate.configure(cap, upstream.max_queued, upstream.queue_timeout)
            self._gates[upstream.name] = gate

    def including_removed(self, name: str) -> Gate:
        """The gate of an upstream of the config a request began on, though a reload has
        removed that upstream since (the mapping itself has only the config's)."""
        gate = self._gates.get(name)
        return gate if gate is not None else self._removed[name]

    def __getitem__(self, name: str) -> Gate:
        return self._gates[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._gates)

    def __len__(self) -> int:
        return len(self._gates)


class _QueueTimeout(Exception):
    pass


def _expire(turn: asyncio.Future[None]) -> None:
    if not turn.done():
        turn.set_exception(_QueueTimeout())


def _discard(waiting: collections.deque[asyncio.Future[None]], turn: asyncio.Future[None]) -> None:
    with contextlib.suppress(ValueError):
        waiting.remove(turn)
