"""What every limiter backend must do alike: each test runs against memory, the
workers' shared SQLite file and a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from hxgw.keys.limiter_memory import MemoryLimiter
from hxgw.keys.limiter_shared import SharedLimiter
from hxgw.keys.limits import PERIODS, WINDOW, KeyLimits, Limiter, Reservation
from tests.unit.keys.conftest import MakeLimiter

NOW = 1_700_000_000.0


async def test_rpm_allows_n_requests_and_refuses_the_next(make_limiter: MakeLimiter) -> None:
    limiter, limits = make_limiter(), KeyLimits(rpm=5)
    decisions = [await limiter.reserve("k", limits, 10, 0.0, NOW + i) for i in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[-1].refused == "requests"
    assert decisions[-1].retry_after == pytest.approx(WINDOW - 5)


async def test_rpm_window_slides_one_request_at_a_time(make_limiter: MakeLimiter) -> None:
    limiter, limits = make_limiter(), KeyLimits(rpm=2)
    for at in (NOW, NOW + 10):
        assert (await limiter.reserve("k", limits, 1, 0.0, at)).allowed
    assert not (await limiter.reserve("k", limits, 1, 0.0, NOW + WINDOW - 0.001)).allowed
    assert (await limiter.reserve("k", limits, 1, 0.0, NOW + WINDOW)).allowed
    assert not (await limiter.reserve("k", limits, 1, 0.0, NOW + WINDOW + 1)).allowed


async def test_keys_have_separate_limits(make_limiter: MakeLimiter) -> None:
    limiter, limits = make_limiter(), KeyLimits(rpm=1)
    assert (await limiter.reserve("a", limits, 1, 0.0, NOW)).allowed
    assert (await limiter.reserve("b", limits, 1, 0.0, NOW)).allowed
    assert not (await limiter.reserve("a", limits, 1, 0.0, NOW)).allowed


async def test_tpm_refuses_an_estimate_that_does_not_fit(make_limiter: MakeLimiter) -> None:
    limiter, limits = make_limiter(), KeyLimits(tpm=1000)
    for at, tokens in ((NOW, 600), (NOW + 5, 300)):
        done = (await limiter.reserve("k", limits, tokens, 0.0, at)).reservation
        assert done is not None
        await limiter.reconcile(done, tokens, 0.0, at)
    refused = await limiter.reserve("k", limits, 200, 0.0, NOW + 10)
    assert refused.refused == "tokens"
    assert refused.retry_after == pytest.approx(WINDOW - 10)  # once the 600 leave
    assert refused.usage.tokens == 900


async def test_a_tpm_refusal_finds_its_wait_deep_in_a_busy_window(make_limiter: MakeLimiter) -> None:
    # 200 requests in the window, the room needed freed by the 101st to leave it (the
    # Redis script reads the log a page of 64 entries at a time).
    limiter, limits = make_limiter(), KeyLimits(tpm=1000)
    for i in range(200):
        done = (await limiter.reserve("k", limits, 5, 0.0, NOW + i * 0.1)).reservation
        assert done is not None
        await limiter.reconcile(done, 5, 0.0, NOW + i * 0.1)
    refused = await limiter.reserve("k", limits, 505, 0.0, NOW + 20)
    assert refused.refused == "tokens"
    assert refused.retry_after == pytest.approx(100 * 0.1 + WINDOW - 20)


async def test_tokens_held_only_by_requests_under_way_are_refused_for_a_second(
    make_limiter: MakeLimiter,
) -> None:
    # Their estimates hold the window; most will use far fewer tokens when they end.
    limiter, limits = make_limiter(), KeyLimits(tpm=1000)
    done = (await limiter.reserve("k", limits, 300, 0.0, NOW)).reservation
    assert done is not None
    await limiter.reconcile(done, 300, 0.0, NOW)
    assert (await limiter.reserve("k", limits, 600, 0.0, NOW + 5)).allowed
    refused = await limiter.reserve("k", limits, 200, 0.0, NOW + 10)
    assert (refused.refused, refused.retry_after) == ("tokens", 1.0)
    refused = await limiter.reserve("k", limits, 800, 0.0, NOW + 10)
    # More than the ended 300 leave: when the window is clear of the 600 too.
    assert refused.retry_after == pytest.approx(WINDOW - 5)


async def test_reconcile_gives_back_tokens_not_used(make_limiter: MakeLimiter) -> None:
    limiter, limits = make_limiter(), KeyLimits(tpm=1000)
    first = await limiter.reserve("k", limits, 800, 0.0, NOW)
    assert first.headers()["x-ratelimit-remaining-tokens"] == "200"
    assert first.reservation is not None
    await limiter.reconcile(first.reservation, 300, 0.0, NOW + 1)
    after = await limiter.reserve("k", limits, 100, 0.0, NOW + 2)
    assert after.headers()["x-ratelimit-remaining-tokens"] == "600"


async def test_reconcile_counts_tokens_beyond_the_estimate(make_limiter: MakeLimiter) -> None:
    limiter, limits = make_limiter(), KeyLimits(tpm=1000)
    first = await limiter.reserve("k", limits, 100, 0.0, NOW)
    assert first.reservation is not None
    await limiter.reconcile(first.reservation, 950, 0.0, NOW + 1)
    assert (await limiter.reserve("k", limits, 100, 0.0, NOW + 2)).refused == "tokens"


async def test_concurrency_slot_is_freed_on_reconcile(make_limiter: MakeLimiter) -> None:
    limiter, limits = make_limiter(), KeyLimits(max_parallel=2)
    held = [await limiter.reserve("k", limits, 1, 0.0, NOW) for _ in range(2)]
    assert (await limiter.reserve("k", limits, 1, 0.0, NOW)).refused == "concurrency"
    assert held[0].reservation is not None
    await limiter.reconcile(held[0].reservation, 1, 0.0, NOW + 1)
    assert (await limiter.reserve("k", limits, 1, 0.0, NOW + 1)).allowed


async def test_concurrency_slot_is_freed_after_lease_expiry(make_limiter: MakeLimiter) -> None:
    limiter, limits = make_limiter(lease_s=30.0), KeyLimits(max_parallel=1)
    assert (await limiter.reserve("k", limits, 1, 0.0, NOW)).allowed  # never reconciled
    assert not (await limiter.reserve("k", limits, 1, 0.0, NOW + 29)).allowed
    assert (await limiter.reserve("k", limits, 1, 0.0, NOW + 30)).allowed


async def test_a_lease_set_later_holds_the_reservations_made_after_it(
    make_limiter: MakeLimiter,
) -> None:
    limiter, limits = make_limiter(lease_s=30.0), KeyLimits(max_parallel=1)
    limiter.set_lease(100.0)  # a reload's longer total timeout
    assert (await limiter.reserve("k", limits, 1, 0.0, NOW)).allowed
    assert not (await limiter.reserve("k", limits, 1, 0.0, NOW + 31)).allowed
    assert (await limiter.reserve("k", limits, 1, 0.0, NOW + 101)).allowed


async def test_a_reservation_reconciled_twice_is_charged_once(make_limiter: MakeLimiter) -> None:
    # A request's end is told from more than one place (its step, a cancel): the second
    # had been taken for a lapsed lease, and charged its difference again.
    limiter, limits = make_limiter(), KeyLimits(budget=10.0, tpm=1000)
    decided = await limiter.reserve("k", limits, 100, 5.0, NOW)
    assert decided.reservation is not None
    await limiter.reconcile(decided.reservation, 10, 1.0, NOW + 1)
    await limiter.reconcile(decided.reservation, 10, 1.0, NOW + 2)
    later = await limiter.reserve("k", limits, 1, 0.0, NOW + 3)
    assert (later.usage.spent, later.usage.tokens) == (pytest.approx(1.0), 11)  # and its own


async def test_expired_lease_charges_its_estimate(make_limiter: MakeLimiter) -> None:
    limiter, limits = make_limiter(lease_s=30.0), KeyLimits(budget=1.0)
    assert (await limiter.reserve("k", limits, 1, 0.4, NOW)).allowed  # its worker died
    later = await limiter.reserve("k", limits, 1, 0.0, NOW + 31)
    assert later.usage.spent == pytest.approx(0.4)
    assert later.usage.reserved == pytest.approx(0.0)


TURN = (NOW // PERIODS["1d"] + 1) * PERIODS["1d"]
"""A day's end: the budget period turns."""
BUDGET = KeyLimits(budget=10.0)


async def _lapsed_before_the_turn(limiter: Limiter, estimate: float) -> Reservation:
    """A reservation of `estimate`, whose lease of 100 s runs out, and charges it, before
    the day turns: its worker died, or its correction was held up."""
    late = (await limiter.reserve("k", BUDGET, 1, estimate, TURN - 200)).reservation
    assert late is not None
    lapses_it = (await limiter.reserve("k", BUDGET, 1, 0.0, TURN - 50)).reservation
    assert lapses_it is not None
    await limiter.reconcile(lapses_it, 1, 0.0, TURN - 49)
    return late


async def test_a_lapsed_lease_reconciled_after_the_period_turned_gives_the_new_one_no_credit(
    make_limiter: MakeLimiter,
) -> None:
    # Its estimate went to the day before; taken off this day's spend, it let the day
    # be overspent by it.
    limiter = make_limiter(lease_s=100.0)
    late = await _lapsed_before_the_turn(limiter, 5.0)
    today = (await limiter.reserve("k", BUDGET, 1, 4.0, TURN + 10)).reservation
    assert today is not None
    await limiter.reconcile(today, 1, 4.0, TURN + 11)
    await limiter.reconcile(late, 1, 0.0, TURN + 20)  # it cost nothing, after all
    over = await limiter.reserve("k", BUDGET, 1, 9.0, TURN + 30)
    assert (over.allowed, over.usage.spent) == (False, 4.0)


async def test_a_lapsed_lease_that_cost_more_than_its_estimate_charges_the_excess_later(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter(lease_s=100.0)
    late = await _lapsed_before_the_turn(limiter, 1.0)
    await limiter.reconcile(late, 1, 3.0, TURN + 20)
    assert (await limiter.reserve("k", BUDGET, 1, 0.0, TURN + 30)).usage.spent == 2.0


async def test_budget_refuses_what_would_overspend_as_insufficient_quota(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter()
    limits = KeyLimits(budget=1.0, budget_period_s=PERIODS["1d"])
    first = await limiter.reserve("k", limits, 1, 0.7, NOW)
    assert first.reservation is not None
    await limiter.reconcile(first.reservation, 1, 0.6, NOW + 1)
    refused = await limiter.reserve("k", limits, 1, 0.5, NOW + 2)
    assert refused.refused == "budget"
    day_ends = (NOW // 86_400 + 1) * 86_400
    assert refused.retry_after == pytest.approx(day_ends - (NOW + 2))
    assert (await limiter.reserve("k", limits, 1, 0.4, NOW + 3)).allowed


async def test_a_budget_full_only_of_reservations_is_refused_for_a_second_not_a_period(
    make_limiter: MakeLimiter,
) -> None:
    limiter, limits = make_limiter(), KeyLimits(budget=1.0)
    assert (await limiter.reserve("k", limits, 1, 0.7, NOW)).allowed  # under way
    refused = await limiter.reserve("k", limits, 1, 0.5, NOW + 1)
    assert refused.refused == "budget"
    assert refused.retry_after == pytest.approx(1.0)  # fits once the first one ends


async def test_budget_renews_with_the_next_period(make_limiter: MakeLimiter) -> None:
    limiter, limits = make_limiter(), KeyLimits(budget=1.0)
    first = await limiter.reserve("k", limits, 1, 1.0, NOW)
    assert first.reservation is not None
    await limiter.reconcile(first.reservation, 1, 1.0, NOW + 1)
    assert not (await limiter.reserve("k", limits, 1, 0.1, NOW + 2)).allowed
    next_day = (NOW // 86_400 + 1) * 86_400
    assert (await limiter.reserve("k", limits, 1, 0.1, next_day)).allowed


async def test_a_budget_s_spend_is_kept_by_a_call_dated_in_the_period_before(
    make_limiter: MakeLimiter,
) -> None:
    # Two instances whose clocks straddle midnight, taking turns: the one behind had set
    # the period back and reset the spend, and the one ahead reset it again.
    limiter, limits = make_limiter(), KeyLimits(budget=1.0)
    midnight = (NOW // 86_400 + 1) * 86_400
    ahead = await limiter.reserve("k", limits, 1, 0.6, midnight + 1)
    assert ahead.reservation is not None
    await limiter.reconcile(ahead.reservation, 1, 0.6, midnight + 1)
    behind = await limiter.reserve("k", limits, 1, 0.3, midnight - 1)
    assert behind.reservation is not None
    await limiter.reconcile(behind.reservation, 1, 0.3, midnight - 1)
    assert not (await limiter.reserve("k", limits, 1, 0.2, midnight + 2)).allowed


async def test_a_changed_budget_period_carries_the_spend_however_often_it_flips(
    make_limiter: MakeLimiter,
) -> None:
    # Instances that see `--budget-period 7d` a moment apart ask with either length.
    limiter = make_limiter()
    daily, weekly = KeyLimits(budget=1.0), KeyLimits(budget=1.0, budget_period_s=PERIODS["7d"])
    first = await limiter.reserve("k", daily, 1, 1.0, NOW)
    assert first.reservation is not None
    await limiter.reconcile(first.reservation, 1, 1.0, NOW + 1)
    for i, limits in enumerate((weekly, daily, weekly, daily)):
        assert not (await limiter.reserve("k", limits, 1, 0.1, NOW + 2 + i)).allowed


async def test_a_changed_budget_period_starts_afresh_after_the_old_one_ended(
    make_limiter: MakeLimiter,
) -> None:
    week = PERIODS["7d"]
    limiter, weekly = make_limiter(), KeyLimits(budget=1.0, budget_period_s=week)
    first = await limiter.reserve("k", weekly, 1, 1.0, NOW)
    assert first.reservation is not None
    await limiter.reconcile(first.reservation, 1, 1.0, NOW + 1)
    next_week = (NOW // week + 1) * week
    # Made daily the next week: last week's spend is no part of this day.
    assert (await limiter.reserve("k", KeyLimits(budget=1.0), 1, 0.1, next_week + 60)).allowed


async def test_parallel_reservations_overspend_budget_by_at_most_one(
    make_limiter: MakeLimiter,
) -> None:
    limiter, limits = make_limiter(), KeyLimits(budget=1.0)
    decisions = await asyncio.gather(
        *(limiter.reserve("k", limits, 1, 0.1, NOW) for _ in range(50))
    )
    admitted = [d.reservation for d in decisions if d.reservation is not None]
    await asyncio.gather(*(limiter.reconcile(r, 1, 0.1, NOW + 1) for r in admitted))
    spent = (await limiter.reserve("k", limits, 1, 0.0, NOW + 2)).usage.spent
    assert len(admitted) == 10
    assert spent <= 1.0 + 0.1


async def test_a_second_reconcile_changes_nothing(make_limiter: MakeLimiter) -> None:
    limiter, limits = make_limiter(), KeyLimits(budget=1.0)
    first = await limiter.reserve("k", limits, 1, 0.5, NOW)
    assert first.reservation is not None
    await limiter.reconcile(first.reservation, 1, 0.5, NOW + 1)
    await limiter.reconcile(first.reservation, 1, 0.5, NOW + 1)
    assert (await limiter.reserve("k", limits, 1, 0.0, NOW + 2)).usage.spent == 0.5


async def test_a_key_without_limits_is_always_allowed(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    decisions = [await limiter.reserve("k", KeyLimits(), 10**6, 10.0, NOW) for _ in range(20)]
    assert all(d.allowed for d in decisions)
    assert decisions[-1].headers() == {}


async def test_a_correction_frees_its_own_estimate_of_the_reserved_cost(
    make_limiter: MakeLimiter,
) -> None:
    # Redis takes the estimate from the correction, not from its own record of it.
    limiter, limits = make_limiter(), KeyLimits(budget=10.0)
    first = await limiter.reserve("k", limits, 1, 0.25, NOW)
    assert (await limiter.reserve("k", limits, 1, 0.5, NOW)).allowed
    assert first.reservation is not None
    await limiter.reconcile(first.reservation, 1, 0.125, NOW + 1)
    later = await limiter.reserve("k", limits, 1, 0.0, NOW + 1)
    assert later.usage.reserved == pytest.approx(0.5)
    assert later.usage.spent == pytest.approx(0.125)


async def test_a_caller_that_leaves_while_its_decision_is_made_does_not_keep_its_slot(
    make_limiter: MakeLimiter,
) -> None:
    limiter, limits = make_limiter(), KeyLimits(max_parallel=1)
    if isinstance(limiter, MemoryLimiter):
        pytest.skip("memory decides without waiting: there is no moment to leave in")
    asking = asyncio.ensure_future(limiter.reserve("k", limits, 1, 0.0, time.time()))
    await asyncio.sleep(0)  # on its way to the thread, or to Redis
    asking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asking
    deadline = time.monotonic() + 5
    while not (await limiter.reserve("k", limits, 1, 0.0, time.time())).allowed:
        assert time.monotonic() < deadline, "the slot is held for the lease"
        await asyncio.sleep(0.05)


async def test_a_released_reservation_leaves_no_request_tokens_or_slot_behind(
    make_limiter: MakeLimiter,
) -> None:
    limiter, limits = make_limiter(), KeyLimits(rpm=2, tpm=1000, max_parallel=2, budget=1.0)
    kept = (await limiter.reserve("k", limits, 100, 0.25, NOW)).reservation
    taken_back = (await limiter.reserve("k", limits, 700, 0.5, NOW + 1)).reservation
    assert kept is not None and taken_back is not None
    limiter.release(taken_back)
    after = await limiter.reserve("k", limits, 300, 0.5, NOW + 2)
    assert after.allowed
    usage = after.usage
    assert (usage.requests, usage.tokens, usage.parallel) == (2, 400, 2)
    assert usage.reserved == pytest.approx(0.75)


async def test_a_reservation_released_after_its_lease_ran_out_keeps_its_charge(
    make_limiter: MakeLimiter,
) -> None:
    limiter, limits = make_limiter(lease_s=10.0), KeyLimits(budget=1.0)
    lapsed = (await limiter.reserve("k", limits, 100, 0.25, NOW)).reservation
    assert lapsed is not None
    assert (await limiter.reserve("k", limits, 1, 0.0, NOW + 11)).usage.spent == 0.25
    limiter.release(lapsed)  # Redis cannot tell it from one not made yet: nor may memory
    assert (await limiter.reserve("k", limits, 1, 0.0, NOW + 12)).usage.spent == 0.25


async def test_a_reservation_released_after_it_left_the_minute_takes_no_tokens_back(
    make_limiter: MakeLimiter,
) -> None:
    limiter, limits = make_limiter(), KeyLimits(tpm=1000)
    gone = (await limiter.reserve("k", limits, 100, 0.0, NOW)).reservation
    assert gone is not None
    assert (await limiter.reserve("k", limits, 300, 0.0, NOW + 60)).usage.tokens == 300
    limiter.release(gone)  # its 100 left the window with it
    assert (await limiter.reserve("k", limits, 1, 0.0, NOW + 61)).usage.tokens == 301


async def test_a_decision_that_cannot_be_stored_leaves_the_next_one_working(
    make_limiter: MakeLimiter,
) -> None:
    # 2**70 tokens does not fit the shared file's JSON: that decision fails, and must not
    # leave the file's transaction (and its lock) open behind it.
    limiter, limits = make_limiter(), KeyLimits(max_parallel=5)
    with contextlib.suppress(Exception):
        await limiter.reserve("k", limits, 2**70, 0.0, NOW)
    assert (await limiter.reserve("k", limits, 1, 0.0, NOW + 1)).allowed


@pytest.mark.parametrize("backend", ["memory", "shared"])
async def test_a_key_first_seen_starts_from_the_spend_the_ledger_had_this_period(
    backend: str, tmp_path
) -> None:
    day = PERIODS["1d"]
    spent = {("k", day): (int(NOW // day), 0.8), ("old", day): (int(NOW // day) - 1, 0.8)}
    limiter = (MemoryLimiter(spent=spent) if backend == "memory"
               else SharedLimiter(tmp_path, spent=spent))
    limits = KeyLimits(budget=1.0, budget_period_s=day)
    refused = await limiter.reserve("k", limits, 10, 0.3, NOW)
    assert refused.refused == "budget" and refused.usage.spent == pytest.approx(0.8)
    assert (await limiter.reserve("old", limits, 10, 0.3, NOW)).allowed  # a past day's
    assert (await limiter.reserve("new", limits, 10, 0.3, NOW)).allowed
    await limiter.close()
