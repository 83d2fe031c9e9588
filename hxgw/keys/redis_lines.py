"""The operations of the Redis limits script as the lines the gateway writes (reserve
`r`, correct `c`, release `x`, seed `s`, add a spend `a`), and its answer to a reservation read back: the
one place on this side that knows their formats, which the script's docstring
(`hxgw.keys.redis_scripts`) spells out field by field."""

from __future__ import annotations

from hxgw.keys.limits import KeyLimits, LimitDecision, Refused, Reservation, Usage, decided

_REFUSED: dict[bytes, Refused] = {
    b"requests": "requests",
    b"tokens": "tokens",
    b"concurrency": "concurrency",
    b"budget": "budget",
}


def _limit(value: float | None) -> str:
    return "-1" if value is None else repr(value)


def spent_line(reservation: Reservation, now: float, amount: float) -> str:
    """What a request counted in this process while Redis was away spent, to add to the
    key's spend (`a`, once per reservation) when Redis answers again."""
    period_s = reservation.budget_period_s
    return f"a {now!r} {reservation.id} {float(amount)!r} {period_s} {int(now // period_s)}"


def seed_line(now: float, amount: float, period_s: int) -> str:
    return f"s {now!r} {float(amount)!r} {period_s} {int(now // period_s)}"


def reserve_line(limits: KeyLimits, rid: str, est_tokens: int, est_cost: float, now: float) -> str:
    return (
        f"r {now!r} {rid} {est_tokens} {float(est_cost)!r} {_limit(limits.rpm)} "
        f"{_limit(limits.tpm)} {_limit(limits.max_parallel)} {_limit(limits.budget)} "
        f"{limits.budget_period_s}"
    )


def decision(
    line: bytes,
    key_name: str,
    rid: str,
    limits: KeyLimits,
    est_tokens: int,
    est_cost: float,
    now: float,
) -> LimitDecision:
    refused, retry, count, tokens, newest, parallel, spent, reserved, _ = line.split(b" ")
    usage = Usage(
        int(count),
        round(float(tokens)),
        None if newest == b"-" else float(newest),
        int(parallel),
        float(spent),
        float(reserved),
    )
    return decided(
        key_name,
        limits,
        rid,
        est_tokens,
        est_cost,
        now,
        refused=_REFUSED.get(refused),
        retry_after=max(0.0, float(retry)),
        usage=usage,
        store="redis",
    )


def correction_line(reservation: Reservation, now: float, tokens: int, cost: float) -> str:
    return (
        f"c {now!r} {reservation.id} {tokens} {float(cost)!r} "
        f"{float(reservation.est_cost)!r} {reservation.budget_period_s} {reservation.at!r}"
    )


def let_go_line(asked: str, now: float) -> str:
    """The correction to nothing of the reservation asked for by the line `asked`: its
    request left before it was answered."""
    _, at, rid, _, est_cost, *_, period_s = asked.split(" ")
    return f"c {now!r} {rid} 0 0.0 {est_cost} {period_s} {at}"


def release_line(at: str, rid: str) -> str:
    """The release of reservation `rid`, asked for at `at` (as its line wrote it)."""
    return f"x {at} {rid}"


def released(asked: str) -> str:
    """The release of the reservation asked for by the line `asked`."""
    _, at, rid, _ = asked.split(" ", 3)
    return release_line(at, rid)


def asked_period(asked: str) -> int:
    """The budget period, in seconds, of the reservation asked for by the line `asked`."""
    return int(asked.rpartition(" ")[2])


def resent(correction: str) -> str | None:
    """The line to send again for `correction` from a batch that failed, as it may have
    run: a `c` applied only if its reservation is still open (`C`); an `a` (added once)
    or an `x` (a release of what is not open is a tombstone) as it is; a seed (`s`) not
    at all: the spend stays awaited, and a reservation after the hold reads it again."""
    kind = correction[0]
    if kind in "cC":
        return "C" + correction[1:]
    return correction if kind in "ax" else None
