"""The limiter of one process: every key's state in a dict.

Exact for one process, and nothing else: with `--workers N` each worker would
enforce its own limit (use `limiter_shared`), and N instances N limits (use
`limiter_redis`). It is also where the Redis limiter counts while Redis is
down and the operator chose to fail open.

No lock: a decision never awaits, so no other task runs in the middle of one.
"""

from __future__ import annotations

import time

from hxgw.keys.limits import KeyLimits, LimitDecision, Reservation, ReservationIds, decided
from hxgw.keys.window import KeyState, Spent, first_state

NO_SPEND: Spent = {}

PRUNE_EVERY = 60.0
"""Seconds between sweeps that forget keys whose state says nothing any more."""
DEFAULT_LEASE = 900.0
"""Seconds a reservation holds its slot without a reconcile: the default total timeout."""


class MemoryLimiter:
    def __init__(
        self, *, lease_s: float = DEFAULT_LEASE, store: str = "memory", spent: Spent = NO_SPEND
    ) -> None:
        self.lease_s = lease_s
        self.spent = spent
        self._store = store
        self._new_id = ReservationIds()
        self._states: dict[str, KeyState] = {}
        self._pruned_at = 0.0

    async def reserve(
        self, key_name: str, limits: KeyLimits, est_tokens: int, est_cost: float, now: float
    ) -> LimitDecision:
        return self.reserve_now(key_name, limits, est_tokens, est_cost, now)

    def reserve_now(
        self, key_name: str, limits: KeyLimits, est_tokens: int, est_cost: float, now: float
    ) -> LimitDecision:
        """`reserve` without a coroutine, for callers that are not async."""
        if now - self._pruned_at >= PRUNE_EVERY:
            self._prune(now)
        state = self._states.get(key_name)
        if state is None:
            state = first_state(key_name, limits.budget_period_s, now, self.spent)
            self._states[key_name] = state
        rid = self._new_id()
        refused, retry_after, usage = state.reserve(
            limits, rid, est_tokens, est_cost, now, self.lease_s
        )
        return decided(
            key_name,
            limits,
            rid,
            est_tokens,
            est_cost,
            now,
            refused=refused,
            retry_after=retry_after,
            usage=usage,
            store=self._store,
        )

    async def reconcile(
        self,
        reservation: Reservation,
        actual_tokens: int,
        actual_cost: float,
        now: float | None = None,
    ) -> float | None:
        if reservation.settled:
            return None
        reservation.settled = True
        state = self._states.get(reservation.key_name)
        if state is None:
            return None  # forgotten: nothing of it was left to correct
        state.reconcile(
            reservation.id,
            reservation.est_cost,
            actual_tokens,
            actual_cost,
            time.time() if now is None else now,
            reservation.at,
        )
        return state.spent

    def release(self, reservation: Reservation) -> None:
        if reservation.settled:
            return
        reservation.settled = True
        state = self._states.get(reservation.key_name)
        if state is not None:
            state.release(reservation.id)

    def set_lease(self, lease_s: float) -> None:
        self.lease_s = lease_s

    async def close(self) -> None:
        self._states.clear()

    def _prune(self, now: float) -> None:
        self._pruned_at = now
        self._states = {name: s for name, s in self._states.items() if not s.idle(now)}
