"""The limiter several instances share: Redis or Valkey, one Lua script per key and batch.

Decisions and corrections go through `hxgw.keys.redis_batch`: those asked for in
one turn of the event loop travel together, one script call per key
(`hxgw.keys.redis_scripts`, called by its hash, loaded again if the server lost
it), each operation decided atomically in order, so N gateways behind a load
balancer enforce one limit, not N. The time is the gateway's clock: instances
must keep theirs in sync (NTP); a skew of d moves the edge of a window by d.

When Redis cannot be reached the operator chooses (`limits_store.fail_open`):

- fail closed, the default: `reserve` raises `LimitsUnavailable` (a 503 with
  Retry-After). For billing this is the safe side: a request refused by
  mistake can be retried, while money spent over a budget cannot be taken back,
  and a fleet of N instances failing open serves N times every limit.
- fail open: the request is judged by this process's own memory limiter, which
  counts from zero (so it sees only this instance's share), until Redis answers
  again; what each request spent goes to the key's shared spend then (`a`, kept with
  the other corrections for the next connection). The outage is logged once a minute.

A batch that fails fails every decision in it the same way. Either way a failed
Redis is tried again at most once per `probe_every` seconds, so an outage costs
one connect attempt a second, not one per request. A correction does not wait
for Redis: it goes with the next batch, within a few milliseconds, and is sent at
close; one that cannot reach Redis waits for the next connection (`redis_batch`); one
still unsent when the gateway stops is dropped: the reservation's lease then expires
there and charges its estimate, the conservative figure.

A key with a budget that Redis has no state for (new, idle past its expiry, or lost in a
restart without persistence) is decided on its spend read back from the ledger (`spend`):
the reservation told so (`new`) is let go and asked again once the spend is sent; those
told to wait while another gateway reads it ask again for at most `timeout`, and then go
the `fail_open` way, as when Redis does not answer.
"""

from __future__ import annotations

import asyncio
import math
import time

import structlog

from hxgw.keys.limiter_memory import DEFAULT_LEASE, MemoryLimiter
from hxgw.keys.limits import (
    CONCURRENCY_RETRY,
    WINDOW,
    KeyLimits,
    LimitDecision,
    LimitsUnavailable,
    Reservation,
    ReservationIds,
)
from hxgw.keys.redis_batch import FAILURES, Batches
from hxgw.keys.redis_lines import (
    asked_period,
    correction_line,
    decision,
    let_go_line,
    release_line,
    reserve_line,
    seed_line,
    spent_line,
)
from hxgw.keys.redis_seed import Spend, seed
from hxgw.keys.resp import ping

log = structlog.get_logger("hxgw.keys.limits")

SEED_POLL = 0.05
"""Seconds between two asks of a reservation told to wait while another gateway reads the
key's spend back."""
LOG_EVERY = 60.0
"""Seconds between two log lines about one outage."""
WATCH_EVERY = 5.0
"""Seconds between two pings of Redis on a connection of their own, whatever the traffic."""


class RedisLimiter:
    def __init__(
        self,
        url: str,
        *,
        fail_open: bool = False,
        lease_s: float = DEFAULT_LEASE,
        prefix: str = "hxgw:limits",
        timeout: float = 0.5,
        probe_every: float = 1.0,
        spend: Spend | None = None,
    ) -> None:
        self.fail_open, self.lease_s, self.prefix = fail_open, lease_s, prefix
        self.probe_every = probe_every
        self.spend = spend
        """Where a key Redis has no state for (it restarted without its data) finds what
        it spent this period: the usage ledger. None: such a key begins from nothing."""
        self._seeding: dict[str, asyncio.Task[None]] = {}
        """Keys whose spend is being read back: their reservations wait for it."""
        self._new_id = ReservationIds()
        self._batches = Batches(
            url,
            self._header(lease_s),
            prefix=prefix,
            timeout=timeout,
            on_failure=self._failed,
            on_success=self._answered,
            on_abandoned=self._abandoned,
        )
        self.local = MemoryLimiter(lease_s=lease_s, store="local")
        """Where requests are counted while Redis is down and the limiter fails open."""
        self._retry_at = 0.0
        self._watching: asyncio.Task[None] | None = None
        self._logged_at = -math.inf
        self._down = False
        self.failures = 0
        """Batches that failed (the /metrics counter)."""

    @property
    def reachable(self) -> bool:
        """Whether Redis answered the last batch (True before the first)."""
        return not self._down

    async def reserve(
        self, key_name: str, limits: KeyLimits, est_tokens: int, est_cost: float, now: float
    ) -> LimitDecision:
        deadline = math.inf  # set when it first waits for a key's spend: `timeout` after
        while time.monotonic() >= self._retry_at:
            if (seeding := self._seeding.get(key_name)) is not None:
                # Decided after the spend it is sending (same connection, same order); a
                # ledger slower than that leaves Redis to say: `wait` while it holds the
                # key for this gateway, or the spend another gateway read back since.
                deadline = min(deadline, time.monotonic() + self._batches.timeout)
                await asyncio.wait({seeding}, timeout=max(0.0, deadline - time.monotonic()))
            rid = self._new_id()
            asked = reserve_line(limits, rid, est_tokens, est_cost, now)
            answer = self._batches.decide(key_name, asked)
            try:
                line = await answer
            except FAILURES:
                break  # the batch told `_failed` once; this request goes the configured way
            except asyncio.CancelledError:
                # Its client left in the very turn the answer came (too late to cancel
                # the answer, which the batch would have let go): let go of it here.
                if answer.done() and not answer.cancelled() and answer.exception() is None:
                    self._abandoned(key_name, asked, answer.result())
                raise
            if line.endswith(b" -"):
                return decision(line, key_name, rid, limits, est_tokens, est_cost, now)
            if line.endswith(b" new"):  # this one reads the key's spend back
                if not self._read_back(key_name, limits.budget_period_s, now):
                    return decision(line, key_name, rid, limits, est_tokens, est_cost, now)
                if line.startswith(b"- "):  # made: let go of it, to be decided after it
                    self._batches.correct(key_name, release_line(repr(now), rid))
            else:  # `wait`: another gateway reads it back
                deadline = min(deadline, time.monotonic() + self._batches.timeout)
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(SEED_POLL)
        if not self.fail_open:
            raise LimitsUnavailable("the limits store cannot be reached; try again shortly")
        return self.local.reserve_now(key_name, limits, est_tokens, est_cost, now)

    async def reconcile(
        self,
        reservation: Reservation,
        actual_tokens: int,
        actual_cost: float,
        now: float | None = None,
    ) -> float | None:
        if reservation.store == "local":
            if actual_cost > 0:  # to the shared spend, once Redis answers again
                when = time.time() if now is None else now
                line = spent_line(reservation, when, actual_cost)
                self._batches.correct(reservation.key_name, line)
            return await self.local.reconcile(reservation, actual_tokens, actual_cost, now)
        if reservation.settled:
            return None
        reservation.settled = True
        when = time.time() if now is None else now
        self._batches.correct(
            reservation.key_name, correction_line(reservation, when, actual_tokens, actual_cost)
        )
        return None

    def release(self, reservation: Reservation) -> None:
        if reservation.store == "local":
            self.local.release(reservation)
        elif not reservation.settled:
            reservation.settled = True
            line = release_line(repr(reservation.at), reservation.id)
            self._batches.correct(reservation.key_name, line)

    def _abandoned(self, key_name: str, asked: str, answer: bytes) -> None:
        """A decision made for a request that left meanwhile (its client went away):
        the reservation it made is let go at once, not held and charged until its
        lease ends."""
        if answer.startswith(b"- "):  # allowed: a reservation was made
            self._batches.correct(key_name, let_go_line(asked, time.time()))
        if answer.endswith(b" new"):  # it was to read the spend back: every gateway waits
            at = float(asked.split(" ", 2)[1])  # as its reservation was dated
            self._read_back(key_name, asked_period(asked), at)

    def _read_back(self, key_name: str, period_s: int, now: float) -> bool:
        """Send the key's spend this period, read from the ledger aside: Redis had no
        state for it, and would count its budget from nothing. False when there is no
        ledger to read: a spend of nothing goes at once, and nothing need be waited for."""
        spend = self.spend
        if spend is None:
            self._batches.correct(key_name, seed_line(now, 0.0, period_s))
            return False

        if key_name not in self._seeding:
            reading = seed(spend, self._batches, key_name, period_s, now)
            task = asyncio.get_running_loop().create_task(reading)
            self._seeding[key_name] = task
            task.add_done_callback(lambda _: self._seeding.pop(key_name, None))
        return True

    async def probe(self) -> None:
        """Connect once at the start: a Redis that cannot be reached (down, a wrong
        password in the URL) is logged and `hxgw_limits_store_up` says 0 from the start,
        not from the first limited request, which an instance may serve long after. Then
        ping it every WATCH_EVERY seconds: the metric says whether it answers now, not
        what the last limited request met (an alert on it would fire for as long as no
        limited request came after an outage, and not at all for one none met)."""
        await self._batches.open()
        if self._watching is None:
            self._watching = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_EVERY)
            try:
                async with asyncio.timeout(self._batches.timeout):
                    await ping(self._batches.url)
            except FAILURES as exc:
                # Only said: the requests' own calls decide how they go (a ping that
                # meets a busy moment must not turn them away for a second).
                if not self._down:
                    self._down = True
                    self._failed_said(exc)
            else:
                self._answered()

    def set_lease(self, lease_s: float) -> None:
        # Each script call says the lease of the reservations it makes: instances (and
        # calls) with other leases share a key's state alike.
        self.lease_s = lease_s
        self._batches.header = self._header(lease_s)
        self.local.set_lease(lease_s)

    @staticmethod
    def _header(lease_s: float) -> tuple[str, ...]:
        return (repr(WINDOW), repr(CONCURRENCY_RETRY), repr(float(lease_s)))

    async def close(self) -> None:
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.gather(self._watching, return_exceptions=True)
        for seeding in self._seeding.values():  # a ledger that does not answer: Redis's
            seeding.cancel()  # hold ends, and another gateway reads the spend back
        await asyncio.gather(*self._seeding.values(), return_exceptions=True)
        await self._batches.close()
        await self.local.close()

    def _failed(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self.probe_every
        self._down = True
        self.failures += 1
        self._failed_said(exc)

    def _failed_said(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            # A timeout says nothing of itself (its text is empty): say what it was.
            said = str(exc) or f"no answer within {self._batches.timeout:g} s"
            log.warning(
                "limits_store_unreachable",
                error=f"{type(exc).__name__}: {said}",
                serving="locally counted" if self.fail_open else "503",
            )

    def _answered(self) -> None:
        if self._down:
            self._down = False
            self._logged_at = -math.inf
            log.info("limits_store_back")
