"""One key's limiter state and the two operations on it, shared by the memory and
the shared-file backends (the Redis script does the same steps server-side).

The state: the log of the last 60 s (one entry per request: its time, tokens and
id, oldest first), the open reservations (id -> lease expiry, estimated cost, log
entry), and the spend of the current budget period. A decision first drops what
aged out: log entries older than the window, and leases past their expiry. A
lease that expired belongs to a request that never reconciled (its worker died);
its estimate is charged to the spend, because the upstream may well have served
it and, for billing, a charge made too small cannot be taken back later.

Why a deque of small lists and not an OrderedDict keyed by id: a request's entry
is found through its reservation (its lease holds the entry), so the log needs no
index of its own, and the oldest entry is `log[0]` rather than an iterator made
to peek at it; a busy key's log holds every request of the last minute.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hxgw.keys.limits import CONCURRENCY_RETRY, WINDOW, KeyLimits, Refused, Usage

Entry = list[Any]
"""A log entry: [time, tokens, request id]; a list, so that a reconcile corrects its
tokens in place."""
Spent = Mapping[tuple[str, int], tuple[int, float]]
"""(key name, budget period in seconds) -> (period index, the key's spend in it), as
the usage ledger had it when the process started."""


def lapsed_charge(spent: float, actual: float, estimate: float, same_period: bool) -> float:
    """The spend once a request whose lease ran out (its `estimate` charged then) says
    what it cost. A later period gets its excess but never a credit: a charge that went
    to the period before would be given back from this one, and let it overspend. (One
    lapsed after the turn, charged in this period, is then overcharged: the safe side.)"""
    if same_period:
        return max(0.0, spent + actual - estimate)
    return spent + max(0.0, actual - estimate)


@dataclass(slots=True)
class KeyState:
    log: deque[Entry] = field(default_factory=deque)
    """Oldest first. Times never decrease: an entry never goes before the newest."""
    tokens: int = 0
    """The tokens of the log, kept as it changes."""
    open: dict[str, tuple[float, float, Entry | None]] = field(default_factory=dict)
    """Soonest to expire first: id -> (lease expiry, estimated cost, its log entry; None
    once that left the log)."""
    lapsed: dict[str, Entry] = field(default_factory=dict)
    """The log entries of leases that expired while the entry is still in the window,
    so that a late reconcile still corrects its tokens (rare: a lease outlasts the
    window unless the total timeout is under a minute)."""
    reserved: float = 0.0
    period: int = 0
    spent: float = 0.0
    period_s: int = 86_400
    horizon: float = -math.inf
    """Entries at or before this time have left the log."""
    next_expiry: float = math.inf
    """No lease expires before this (the first lease's expiry, when last looked at)."""
    last_expiry: float = -math.inf
    """The latest expiry given a lease: a new one never expires before it."""

    def reserve(
        self,
        limits: KeyLimits,
        rid: str,
        est_tokens: int,
        est_cost: float,
        now: float,
        lease_s: float,
    ) -> tuple[Refused | None, float, Usage]:
        """Admit the request and count it, or say which limit refuses it and for how long."""
        self._roll(now, limits.budget_period_s, far=True)
        self._expire(now)
        refused, retry_after = self._refusal(limits, est_tokens, est_cost, now)
        if refused is None:
            log = self.log
            # Processes sharing the state may disagree by microseconds on `now`;
            # the log stays ordered by time when no entry goes before the newest.
            when = log[-1][0] if log and log[-1][0] > now else now
            entry = [when, est_tokens, rid]
            log.append(entry)
            self.tokens += est_tokens
            expiry = now + lease_s
            if self.open and expiry < self.last_expiry:
                expiry = self.last_expiry  # keep the leases in expiry order
            self.last_expiry = expiry
            if expiry < self.next_expiry:
                self.next_expiry = expiry
            self.open[rid] = (expiry, est_cost, entry)
            self.reserved += est_cost
        return refused, retry_after, self.usage()

    def reconcile(
        self,
        rid: str,
        est_cost: float,
        actual_tokens: int,
        actual_cost: float,
        now: float,
        at: float,
    ) -> None:
        """Correct the request's tokens (reserved at `at`) and charge its cost; free its
        slot."""
        self._roll(now, self.period_s)
        lease = self.open.pop(rid, None)
        if lease is not None:
            self.reserved = self.reserved - lease[1] if self.open else 0.0
            self.spent += actual_cost
            entry = lease[2]
        else:
            # The lease ran out and its estimate was charged: charge the difference, but
            # give back none of it in a period after the reservation's, which may not
            # hold the charge (made before the period turned).
            self.spent = lapsed_charge(
                self.spent, actual_cost, est_cost, int(at // self.period_s) == self.period
            )
            entry = self.lapsed.pop(rid, None)
        if entry is not None and entry[0] > self.horizon:
            self.tokens += actual_tokens - entry[1]
            entry[1] = actual_tokens

    def release(self, rid: str) -> None:
        """Take back the reservation `rid` of a request never sent, another limit having
        refused it: its slot, its estimate and its entry in the window go, as if it had
        not been made. One whose lease ran out meanwhile keeps the estimate that charged,
        as Redis's release keeps it (it cannot tell such a reservation from one its batch
        had not made yet): a lease outlasts any refusal."""
        lease = self.open.pop(rid, None)
        if lease is None:
            return
        self.reserved = self.reserved - lease[1] if self.open else 0.0
        entry, log = lease[2], self.log
        if entry is None or entry[0] <= self.horizon:
            return
        self.tokens -= entry[1]
        # Made a moment ago: near the log's end, where the search begins.
        for i in range(len(log) - 1, -1, -1):
            if log[i] is entry:
                del log[i]
                return

    def usage(self) -> Usage:
        log = self.log
        return Usage(
            len(log),
            self.tokens,
            log[-1][0] if log else None,
            len(self.open),
            self.spent,
            self.reserved,
        )

    def idle(self, now: float) -> bool:
        """Whether the state says nothing any more, so it can be forgotten."""
        self._expire(now)
        return not self.log and not self.open and (self.spent == 0 or self._stale(now))

    def _refusal(
        self, limits: KeyLimits, est_tokens: int, est_cost: float, now: float
    ) -> tuple[Refused | None, float]:
        if limits.budget is not None and self.spent + self.reserved + est_cost > limits.budget:
            if self.spent + est_cost <= limits.budget:
                # Only the requests under way hold what it needs: room comes back as
                # they end, not at the period's end.
                return "budget", CONCURRENCY_RETRY
            return "budget", (self.period + 1) * self.period_s - now
        if limits.rpm is not None and len(self.log) >= limits.rpm:
            # The request that must leave the window before one more fits in it.
            return "requests", self.log[len(self.log) - limits.rpm][0] + WINDOW - now
        if limits.tpm is not None and self.tokens + est_tokens > limits.tpm:
            return "tokens", self._tokens_free_in(limits.tpm, est_tokens, now)
        if limits.max_parallel is not None and len(self.open) >= limits.max_parallel:
            return "concurrency", CONCURRENCY_RETRY
        return None, 0.0

    def _tokens_free_in(self, tpm: int, est_tokens: int, now: float) -> float:
        if est_tokens > tpm:
            return WINDOW  # never fits; say a window, as the message says why
        held = sum(e[1] for _, _, e in self.open.values() if e is not None and e[0] > self.horizon)
        if self.tokens - held + est_tokens <= tpm:
            # Only the requests under way hold what it needs, at their estimates: room
            # comes back as they end, most using far fewer tokens than they reserved.
            return CONCURRENCY_RETRY
        left = self.tokens
        for when, tokens, _ in self.log:
            left -= tokens
            if left + est_tokens <= tpm:
                return float(when + WINDOW - now)
        return WINDOW

    def _expire(self, now: float) -> None:
        log, horizon = self.log, now - WINDOW
        if log and log[0][0] <= horizon:
            while log and log[0][0] <= horizon:
                self.tokens -= log.popleft()[1]
            self.horizon = max(self.horizon, horizon)
            if self.lapsed:
                self.lapsed = {r: e for r, e in self.lapsed.items() if e[0] > self.horizon}
        if now >= self.next_expiry:
            self._expire_leases(now)

    def _expire_leases(self, now: float) -> None:
        open_ = self.open
        while open_:
            rid = next(iter(open_))
            expiry, cost, entry = open_[rid]
            if expiry > now:
                self.next_expiry = expiry
                return
            del open_[rid]
            self.spent += cost
            self.reserved = self.reserved - cost if open_ else 0.0
            if entry is not None and entry[0] > self.horizon:
                self.lapsed[rid] = entry
        self.next_expiry = math.inf

    def _roll(self, now: float, period_s: int, *, far: bool = False) -> None:
        """Into the period of `now`. Only a reservation's (`far`), at the clock's now, may
        set it back past the one before: a correction's may be long past."""
        period = int(now // period_s)
        if period_s != self.period_s:
            # A new length carries the spend into the period under way, if the old period
            # reached into it: which part of it falls there is not known, and instances
            # that see the change a moment apart must not each start the budget afresh.
            if (self.period + 1) * self.period_s <= period * period_s:
                self.spent = 0.0
            self.period, self.period_s = period, period_s
        elif _rolls(period, self.period, far=far):
            self.period, self.spent = period, 0.0

    def _stale(self, now: float) -> bool:
        return _rolls(int(now // self.period_s), self.period)

    # Column by column, so that building and reading a large window stays in C
    # (zip, deque, dict, orjson) rather than a Python loop over its entries.
    def to_doc(self) -> dict[str, Any]:
        times, tokens, ids = zip(*self.log, strict=True) if self.log else ((), (), ())
        expiries, costs, _ = zip(*self.open.values(), strict=True) if self.open else ((), (), ())
        return {
            "l": [ids, times, tokens],
            "o": [list(self.open), expiries, costs],
            "x": list(self.lapsed),
            "p": self.period,
            "ps": self.period_s,
            "s": self.spent,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> KeyState:
        ids, times, tokens = doc["l"]
        open_ids, expiries, costs = doc["o"]
        log: deque[Entry] = deque(map(list, zip(times, tokens, ids, strict=True)))
        by_id = dict(zip(ids, log, strict=True)) if open_ids or doc.get("x") else {}
        leases = zip(expiries, costs, map(by_id.get, open_ids), strict=True)
        return cls(
            log=log,
            tokens=sum(tokens),
            open=dict(zip(open_ids, leases, strict=True)),
            lapsed={rid: by_id[rid] for rid in doc.get("x", ()) if rid in by_id},
            reserved=sum(costs),
            period=doc["p"],
            period_s=doc["ps"],
            spent=doc["s"],
            next_expiry=expiries[0] if expiries else math.inf,
            last_expiry=expiries[-1] if expiries else -math.inf,
        )


def first_state(key_name: str, period_s: int, now: float, spent: Spent) -> KeyState:
    """A key's state when this process first sees it: its spend this period so far is
    the ledger's, so a restart does not hand every budget a new period."""
    period = int(now // period_s)
    known = spent.get((key_name, period_s))
    so_far = known[1] if known is not None and known[0] == period else 0.0
    return KeyState(period=period, period_s=period_s, spent=so_far)


def _rolls(period: int, current: int, *, far: bool = True) -> bool:
    """Whether a call dated in budget `period` starts it afresh from `current`: a later
    one does; the one just before does not (an instance whose clock is behind another's
    across the boundary had reset the spend each time it took its turn), nor does the
    current. One further back (`far`: a reservation's, dated now) means the state came
    from a clock far ahead: it goes."""
    return period > current or (far and period < current - 1)
