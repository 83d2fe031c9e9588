"""Per-key limits: what a key may use, what the limiter decided, and how a refusal reads.

A key may have requests per minute (`rpm`), tokens per minute (`tpm`), requests
at once (`max_parallel`) and a money `budget` per fixed period (1d, 7d or 30d,
aligned to the UTC epoch). A request *reserves* its estimated tokens and cost
before it goes upstream and is *reconciled* to what it really used when it ends,
so a burst of parallel requests cannot overspend: each one is counted before
the next is judged.

The window is a sliding log of the last 60 seconds: one entry per request (its
time and tokens). "N requests per minute" then means at most N in *any* 60 s,
and the N+1th is refused, exactly. A fixed window lets 2N through across its
edge; GCRA with a burst of N lets N through at once and then one every 60/N s,
so it admits more than N in the first minute. The log costs one entry per
request of the last minute, which the RPM itself bounds.

The decision (`reserve`) and the correction (`reconcile`) are the backends'
(`hxgw.keys.limiter_memory`, `limiter_shared`, `limiter_redis`); this module
holds what they share: the values and the headers (a refusal's body:
`hxgw.keys.refusal`).
"""

from __future__ import annotations

import itertools
import math
import os
import secrets
import time
from dataclasses import dataclass
from typing import Literal, Protocol

from hxgw.config import KeyLimits as KeyLimits
from hxgw.config.schema import PERIODS as PERIODS
from hxgw.errors import Unavailable
from hxgw.memo import Memo

WINDOW = 60.0
"""Seconds of the RPM and TPM window."""
CONCURRENCY_RETRY = 1.0
"""A slot frees when some request ends, which no clock says: ask to retry in a second."""

Refused = Literal["requests", "tokens", "concurrency", "budget"]


# These three are made for every request of a limited key: plain slotted classes,
# built with positional arguments. (Frozen, keyword-only, each field went through
# object.__setattr__ and the call through keyword parsing: a third of what a
# reservation cost.) Nothing changes them once made, bar `settled`.


@dataclass(slots=True, eq=False)
class Reservation:
    """The handle of one admitted request, to be reconciled exactly once."""

    key_name: str
    id: str
    est_tokens: int
    est_cost: float
    budget_period_s: int
    store: str
    """Which store holds it: "memory", "shared", "redis", or "local" (Redis was down)."""
    at: float
    """When it was made (the `now` it was decided at)."""
    settled: bool = False


@dataclass(slots=True, eq=False)
class Usage:
    """A key's figures right after a decision."""

    requests: int
    """Requests in the window."""
    tokens: int
    """Tokens in the window (estimates until reconciled)."""
    newest: float | None
    """When the window's newest request was made; None when the window is empty."""
    parallel: int
    spent: float
    reserved: float


@dataclass(slots=True, eq=False)
class LimitDecision:
    allowed: bool
    limits: KeyLimits
    usage: Usage
    now: float
    est_tokens: int
    est_cost: float
    refused: Refused | None = None
    retry_after: float = 0.0
    """Seconds until the same request could pass; 0 when it did."""
    reservation: Reservation | None = None
    store: str = ""
    """Which store decided: as `Reservation.store` ("local": Redis was down)."""

    @property
    def reset(self) -> float:
        """Seconds until the window is empty again: OpenAI's "resets to its initial state"."""
        if self.usage.newest is None:
            return 0.0
        return max(0.0, self.usage.newest + WINDOW - self.now)

    def headers(self) -> dict[str, str]:
        """The `x-ratelimit-*` headers of the limits the key has, plus `retry-after`
        (whole seconds, rounded up) and OpenAI's `retry-after-ms` when refused."""
        headers: dict[str, str] = {}
        limits, usage = self.limits, self.usage
        reset = _DURATIONS[round(self.reset * 1000)]
        if limits.rpm is not None:
            left = limits.rpm - usage.requests
            headers["x-ratelimit-limit-requests"] = str(limits.rpm)
            headers["x-ratelimit-remaining-requests"] = str(left) if left > 0 else "0"
            headers["x-ratelimit-reset-requests"] = reset
        if limits.tpm is not None:
            left = limits.tpm - usage.tokens
            headers["x-ratelimit-limit-tokens"] = str(limits.tpm)
            headers["x-ratelimit-remaining-tokens"] = str(left) if left > 0 else "0"
            headers["x-ratelimit-reset-tokens"] = reset if usage.tokens else "0s"
        if not self.allowed:
            headers["retry-after"] = str(max(1, math.ceil(self.retry_after)))
            headers["retry-after-ms"] = str(max(1, round(self.retry_after * 1000)))
        return headers

    def anthropic_headers(self) -> dict[str, str]:
        """The same limits as Anthropic's API says them on its routes: code that paces
        itself against Anthropic reads `anthropic-ratelimit-*`, with each reset the time
        (RFC 3339) the limit is whole again."""
        headers: dict[str, str] = {}
        limits, usage = self.limits, self.usage
        whole_at = _rfc3339(self.now + self.reset)
        if limits.rpm is not None:
            headers["anthropic-ratelimit-requests-limit"] = str(limits.rpm)
            headers["anthropic-ratelimit-requests-remaining"] = str(
                max(0, limits.rpm - usage.requests)
            )
            headers["anthropic-ratelimit-requests-reset"] = whole_at
        if limits.tpm is not None:
            headers["anthropic-ratelimit-tokens-limit"] = str(limits.tpm)
            headers["anthropic-ratelimit-tokens-remaining"] = str(max(0, limits.tpm - usage.tokens))
            headers["anthropic-ratelimit-tokens-reset"] = (
                whole_at if usage.tokens else _rfc3339(self.now)
            )
        return headers


class ReservationIds:
    """Ids no other reservation in a store shared by processes (and by limiters in one
    process) has: a random part drawn once per limiter, the process and a count. (A
    random id per request read the system's entropy: 2% of a limited request's CPU.
    The pid and the object's address alone could repeat across containers started
    alike, and two instances on one Redis would then count one request for two.)"""

    def __init__(self) -> None:
        self._prefix = f"{secrets.token_hex(4)}.{os.getpid():x}."
        self._count = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._count):x}"


def _rfc3339(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(when)))


def duration(seconds: float) -> str:
    """A duration the way OpenAI's headers write it (Go's): "6m0s", "1.5s", "20ms", "0s"."""
    return _DURATIONS[round(seconds * 1000)]


def _duration_ms(ms: int) -> str:
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


# Every answer of a limited key carries two of these, and a busy key's resets are the
# same few values (about a minute): formatting them once each took 4% of its CPU.
_DURATIONS: Memo[int, str] = Memo(_duration_ms, 4096)


def decided(
    key_name: str,
    limits: KeyLimits,
    rid: str,
    est_tokens: int,
    est_cost: float,
    now: float,
    *,
    refused: Refused | None,
    retry_after: float,
    usage: Usage,
    store: str,
) -> LimitDecision:
    """What a backend's reserve returns: its decision and, when the request was
    admitted, the reservation to reconcile."""
    reservation = None
    if refused is None:
        # Positional, in field order (see above).
        reservation = Reservation(
            key_name, rid, est_tokens, est_cost, limits.budget_period_s, store, now
        )
    return LimitDecision(
        refused is None,
        limits,
        usage,
        now,
        est_tokens,
        est_cost,
        refused,
        retry_after,
        reservation,
        store,
    )


class Limiter(Protocol):
    """What every backend offers; see `hxgw.keys.limiters.open_limiter`."""

    async def reserve(
        self, key_name: str, limits: KeyLimits, est_tokens: int, est_cost: float, now: float
    ) -> LimitDecision: ...

    async def reconcile(
        self,
        reservation: Reservation,
        actual_tokens: int,
        actual_cost: float,
        now: float | None = None,
    ) -> float | None:
        """Correct the reservation to what the request used; the key's spend in its period
        after the charge, where it is known at once (not with Redis, whose corrections
        go in batches nobody waits for)."""

    def release(self, reservation: Reservation) -> None:
        """Take the reservation back whole, as if it had not been made: its request was
        refused by another limit before it went anywhere. Not awaited: done at once, or
        queued in order before anything this process asks of the store next."""

    def set_lease(self, lease_s: float) -> None:
        """How long reservations made from now on may stay open (a reload's total
        timeout); those already made keep theirs."""

    async def close(self) -> None: ...


class LimitsUnavailable(Unavailable):
    """The shared limits store cannot be reached and the operator chose to fail closed."""

    code = "limits_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=1)
