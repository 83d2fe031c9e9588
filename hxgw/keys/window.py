"""One key's limiter state and the two operations on it, shared by the memory and
the shared-file backends (the Redis script does the same steps server-side).

The state: the log of the last 60 s (request id -> time, tokens), the open
reservations (id -> lease expiry, estimated cost), and the spend of the current
budget period. A decision first drops what aged out: log entries older than the
window, and leases past their expiry. A lease that expired belongs to a request
that never reconciled (its worker died); its estimate is charged to the spend,
because the upstream may well have served it and, for billing, a charge made
too small cannot be taken back later.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from hxgw.keys.limits import CONCURRENCY_RETRY, WINDOW, KeyLimits, Refused, Usage


@dataclass(slots=True)
class KeyState:
    log: OrderedDict[str, tuple[float, int]] = field(default_factory=OrderedDict)
    """Oldest first: id -> (time, tokens)."""
    tokens: int = 0
    """The tokens of the log, kept as it changes."""
    open: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)
    """Soonest to expire first: id -> (lease expiry, estimated cost)."""
    reserved: float = 0.0
    period: int = 0
    spent: float = 0.0
    period_s: int = 86_400

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
        self._roll(now, limits.budget_period_s)
        self._expire(now)
        refused, retry_after = self._refusal(limits, est_tokens, est_cost, now)
        if refused is None:
            # Processes sharing the state may disagree by microseconds on `now`;
            # the log stays ordered by time when no entry goes before the newest.
            when = max(now, self._newest() or now)
            self.log[rid] = (when, est_tokens)
            self.tokens += est_tokens
            last_expiry = next(reversed(self.open.values()))[0] if self.open else now
            self.open[rid] = (max(now + lease_s, last_expiry), est_cost)
            self.reserved += est_cost
        return refused, retry_after, self.usage()

    def reconcile(
        self, rid: str, est_cost: float, actual_tokens: int, actual_cost: float, now: float
    ) -> None:
        """Correct the request's tokens and charge its cost; free its slot."""
        self._roll(now, self.period_s)
        lease = self.open.pop(rid, None)
        if lease is not None:
            self.reserved = self.reserved - lease[1] if self.open else 0.0
            self.spent += actual_cost
        else:
            # The lease ran out and its estimate was charged: charge the difference.
            self.spent = max(0.0, self.spent + actual_cost - est_cost)
        entry = self.log.get(rid)
        if entry is not None:
            self.tokens += actual_tokens - entry[1]
            self.log[rid] = (entry[0], actual_tokens)

    def usage(self) -> Usage:
        return Usage(
            requests=len(self.log),
            tokens=self.tokens,
            newest=self._newest(),
            parallel=len(self.open),
            spent=self.spent,
            reserved=self.reserved,
        )

    def idle(self, now: float) -> bool:
        """Whether the state says nothing any more, so it can be forgotten."""
        self._expire(now)
        return not self.log and not self.open and (self.spent == 0 or self._stale(now))

    def _refusal(
        self, limits: KeyLimits, est_tokens: int, est_cost: float, now: float
    ) -> tuple[Refused | None, float]:
        if limits.budget is not None and self.spent + self.reserved + est_cost > limits.budget:
            return "budget", (self.period + 1) * self.period_s - now
        if limits.rpm is not None and len(self.log) >= limits.rpm:
            # The request that must leave the window before one more fits in it.
            when, _ = next(islice(self.log.values(), len(self.log) - limits.rpm, None))
            return "requests", when + WINDOW - now
        if limits.tpm is not None and self.tokens + est_tokens > limits.tpm:
            return "tokens", self._tokens_free_in(limits.tpm, est_tokens, now)
        if limits.max_parallel is not None and len(self.open) >= limits.max_parallel:
            return "concurrency", CONCURRENCY_RETRY
        return None, 0.0

    def _tokens_free_in(self, tpm: int, est_tokens: int, now: float) -> float:
        if est_tokens > tpm:
            return WINDOW  # never fits; say a window, as the message says why
        left = self.tokens
        for when, tokens in self.log.values():
            left -= tokens
            if left + est_tokens <= tpm:
                return when + WINDOW - now
        return WINDOW

    def _expire(self, now: float) -> None:
        while self.log:
            rid, (when, tokens) = next(iter(self.log.items()))
            if when > now - WINDOW:
                break
            del self.log[rid]
            self.tokens -= tokens
        while self.open:
            rid, (expiry, cost) = next(iter(self.open.items()))
            if expiry > now:
                break
            del self.open[rid]
            self.spent += cost
            self.reserved = self.reserved - cost if self.open else 0.0

    def _roll(self, now: float, period_s: int) -> None:
        period = int(now // period_s)
        if period != self.period or period_s != self.period_s:
            self.period, self.period_s, self.spent = period, period_s, 0.0

    def _stale(self, now: float) -> bool:
        return int(now // self.period_s) != self.period

    def _newest(self) -> float | None:
        return next(reversed(self.log.values()))[0] if self.log else None

    # Column by column, so that building and reading a large window stays in C
    # (zip, OrderedDict, orjson) rather than a Python loop over its entries.
    def to_doc(self) -> dict[str, Any]:
        times, tokens = zip(*self.log.values(), strict=True) if self.log else ((), ())
        expiries, costs = zip(*self.open.values(), strict=True) if self.open else ((), ())
        return {
            "l": [list(self.log), times, tokens],
            "o": [list(self.open), expiries, costs],
            "p": self.period,
            "ps": self.period_s,
            "s": self.spent,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> KeyState:
        ids, times, tokens = doc["l"]
        open_ids, expiries, costs = doc["o"]
        return cls(
            log=OrderedDict(zip(ids, zip(times, tokens, strict=True), strict=True)),
            tokens=sum(tokens),
            open=OrderedDict(zip(open_ids, zip(expiries, costs, strict=True), strict=True)),
            reserved=sum(costs),
            period=doc["p"],
            period_s=doc["ps"],
            spent=doc["s"],
        )
