"""The bad-key guard: lockout after repeated failures, per address, bounded memory."""

from __future__ import annotations

from hxgw.keys.guard import MAX_TRACKED, BadKeyGuard


def _fail(guard: BadKeyGuard, address: str, now: float, times: int) -> list[bool]:
    return [guard.failed(address, now, 3, 60, 30) for _ in range(times)]


def test_the_address_is_locked_out_at_the_nth_failure():
    guard = BadKeyGuard()
    assert _fail(guard, "10.0.0.1", 0, 3) == [False, False, True]
    assert guard.locked_for("10.0.0.1", 1) == 29


def test_other_addresses_are_not_affected():
    guard = BadKeyGuard()
    _fail(guard, "10.0.0.1", 0, 3)
    assert guard.locked_for("10.0.0.2", 1) == 0


def test_the_lockout_ends_after_its_time():
    guard = BadKeyGuard()
    _fail(guard, "a", 0, 3)
    assert guard.locked_for("a", 30) == 0


def test_failures_spread_over_more_than_the_window_do_not_lock():
    guard = BadKeyGuard()
    for minute in range(5):
        assert _fail(guard, "a", minute * 61, 2) == [False, False]


def test_memory_stays_bounded_under_many_addresses():
    guard = BadKeyGuard()
    for i in range(MAX_TRACKED * 2):
        guard.failed(f"addr-{i}", i * 100.0, 3, 60, 30)
    assert len(guard._records) <= MAX_TRACKED
