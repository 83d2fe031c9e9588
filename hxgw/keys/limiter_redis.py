"""The limiter several instances share: Redis or Valkey, one Lua script per decision.

Each decision and each correction is one script (`hxgw.keys.redis_scripts`),
loaded once and called by its hash (redis-py's `register_script`: EVALSHA, and
SCRIPT LOAD again if the server lost it), so N gateways behind a load balancer
enforce one limit, not N. The time is the gateway's clock: instances must keep
theirs in sync (NTP); a skew of d moves the edge of a window by d.

When Redis cannot be reached the operator chooses (`limits_store.fail_open`):

- fail closed, the default: `reserve` raises `LimitsUnavailable` (a 503 with
  Retry-After). For billing this is the safe side: a request refused by
  mistake can be retried, while money spent over a budget cannot be taken back,
  and a fleet of N instances failing open serves N times every limit.
- fail open: the request is judged by this process's own memory limiter, which
  counts from zero (so it sees only this instance's share), until Redis answers
  again. The outage is logged once a minute.

Either way a failed Redis is tried again at most once per `probe_every` seconds,
so an outage costs one connect attempt a second, not one per request. A
correction that cannot reach Redis is dropped and logged: the reservation's
lease then expires there and charges its estimate, the conservative figure.
"""

from __future__ import annotations

import math
import time

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hxgw.keys.limiter_memory import DEFAULT_LEASE, MemoryLimiter
from hxgw.keys.limits import (
    CONCURRENCY_RETRY,
    WINDOW,
    Decision,
    KeyLimits,
    LimitsUnavailable,
    Refused,
    Reservation,
    ReservationIds,
    Usage,
    decided,
)
from hxgw.keys.redis_scripts import RECONCILE, RESERVE

log = structlog.get_logger("hxgw.keys.limits")

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
LOG_EVERY = 60.0
"""Seconds between two log lines about one outage."""
_REFUSED: dict[str, Refused] = {
    "requests": "requests",
    "tokens": "tokens",
    "concurrency": "concurrency",
    "budget": "budget",
}


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
    ) -> None:
        self.fail_open, self.lease_s, self.prefix = fail_open, lease_s, prefix
        self.probe_every = probe_every
        self._new_id = ReservationIds()
        # One retry, at once, on a broken connection only: a connection the server
        # closed (a restart) is replaced without failing the request; a timeout is
        # not retried, since the script may have run and a retry would count twice.
        self._redis = Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._reserve = self._redis.register_script(RESERVE)
        self._reconcile = self._redis.register_script(RECONCILE)
        self.local = MemoryLimiter(lease_s=lease_s, store="local")
        """Where requests are counted while Redis is down and the limiter fails open."""
        self._retry_at = 0.0
        self._logged_at = -math.inf
        self._down = False

    async def reserve(
        self, key_name: str, limits: KeyLimits, est_tokens: int, est_cost: float, now: float
    ) -> Decision:
        if time.monotonic() >= self._retry_at:
            rid = self._new_id()
            try:
                reply = await self._reserve(
                    keys=self._keys(key_name),
                    args=_reserve_args(limits, rid, est_tokens, est_cost, now, self.lease_s),
                )
            except UNREACHABLE as exc:
                self._failed(exc)
            else:
                self._answered()
                return _decision(reply, key_name, rid, limits, est_tokens, est_cost, now)
        if not self.fail_open:
            raise LimitsUnavailable("the limits store cannot be reached; try again shortly")
        return self.local.reserve_now(key_name, limits, est_tokens, est_cost, now)

    async def reconcile(
        self,
        reservation: Reservation,
        actual_tokens: int,
        actual_cost: float,
        now: float | None = None,
    ) -> None:
        if reservation.store == "local":
            await self.local.reconcile(reservation, actual_tokens, actual_cost, now)
            return
        if reservation.settled:
            return
        reservation.settled = True
        when = time.time() if now is None else now
        ttl = _ttl(self.lease_s, reservation.budget_period_s)
        try:
            await self._reconcile(
                keys=self._keys(reservation.key_name),
                args=[
                    repr(when),
                    reservation.id,
                    actual_tokens,
                    repr(float(actual_cost)),
                    repr(float(reservation.est_cost)),
                    reservation.budget_period_s,
                    ttl,
                ],
            )
        except UNREACHABLE as exc:
            self._failed(exc)
        else:
            self._answered()

    async def close(self) -> None:
        await self._redis.aclose()
        await self.local.close()

    def _keys(self, key_name: str) -> list[str]:
        # The braces make the key's name the hash tag: its four keys share a cluster slot.
        base = f"{self.prefix}:{{{key_name}}}:"
        return [base + "log", base + "tok", base + "open", base + "st"]

    def _failed(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self.probe_every
        self._down = True
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            log.warning(
                "limits_store_unreachable",
                error=f"{type(exc).__name__}: {exc}",
                serving="locally counted" if self.fail_open else "503",
            )

    def _answered(self) -> None:
        if self._down:
            self._down = False
            self._logged_at = -math.inf
            log.info("limits_store_back")


def _ttl(lease_s: float, period_s: int) -> int:
    return math.ceil(max(WINDOW, lease_s, period_s) + WINDOW)


def _limit(value: float | None) -> str:
    return "-1" if value is None else repr(value)


def _reserve_args(
    limits: KeyLimits, rid: str, est_tokens: int, est_cost: float, now: float, lease_s: float
) -> list[str | int]:
    return [
        repr(now),
        rid,
        est_tokens,
        repr(float(est_cost)),
        _limit(limits.rpm),
        _limit(limits.tpm),
        _limit(limits.max_parallel),
        _limit(limits.budget),
        limits.budget_period_s,
        repr(lease_s),
        _ttl(lease_s, limits.budget_period_s),
        repr(WINDOW),
        repr(CONCURRENCY_RETRY),
    ]


def _decision(
    reply: list[bytes | int],
    key_name: str,
    rid: str,
    limits: KeyLimits,
    est_tokens: int,
    est_cost: float,
    now: float,
) -> Decision:
    refused_raw, retry, count, tokens, newest, parallel, spent, reserved = reply
    refused = _REFUSED.get(_text(refused_raw))
    usage = Usage(
        requests=int(count),
        tokens=round(float(tokens)),
        newest=float(newest) if newest else None,
        parallel=int(parallel),
        spent=float(spent),
        reserved=float(reserved),
    )
    return decided(
        key_name,
        limits,
        rid,
        est_tokens,
        est_cost,
        now,
        refused=refused,
        retry_after=max(0.0, float(retry)),
        usage=usage,
        store="redis",
    )


def _text(value: bytes | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
