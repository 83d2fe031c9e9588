"""The bad-key guard: lockout after repeated failures, per address, without refusing the
good keys of others at that address; and whose address a request is."""

from __future__ import annotations

import ipaddress

from hxgw.config.schema import BadKeyPolicy
from hxgw.keys.guard import KNOWN_FOR, MAX_TRACKED, BadKeyGuard, Verdict, client_address

POLICY = BadKeyPolicy(max_failures=3, window=60, lockout=30)
GOOD, OTHER_GOOD, BAD = b"good", b"other-good", b"bad"


def _fail(guard: BadKeyGuard, address: str, now: float, times: int) -> list[Verdict]:
    return [guard.judge(address, BAD, False, now, POLICY) for _ in range(times)]


def test_the_address_is_locked_out_at_the_nth_failure():
    guard = BadKeyGuard()
    assert _fail(guard, "10.0.0.1", 0, 4) == [Verdict.BAD] * 3 + [Verdict.LOCKED]
    assert guard.locked_for("10.0.0.1", 1) == 29


def test_other_addresses_are_not_affected():
    guard = BadKeyGuard()
    _fail(guard, "10.0.0.1", 0, 3)
    assert guard.judge("10.0.0.2", GOOD, True, 1, POLICY) is Verdict.OK


def test_a_key_that_worked_from_the_address_keeps_working_during_a_lockout():
    guard = BadKeyGuard()
    assert guard.judge("nat", GOOD, True, 0, POLICY) is Verdict.OK
    _fail(guard, "nat", 1, 3)
    assert guard.judge("nat", GOOD, True, 2, POLICY) is Verdict.OK


def test_during_a_lockout_a_right_guess_looks_like_a_wrong_one():
    guard = BadKeyGuard()
    _fail(guard, "nat", 0, 3)
    assert guard.judge("nat", OTHER_GOOD, True, 1, POLICY) is Verdict.LOCKED
    assert guard.judge("nat", BAD, False, 1, POLICY) is Verdict.LOCKED


def test_a_key_not_used_from_the_address_for_long_waits_out_the_lockout():
    guard = BadKeyGuard()
    guard.judge("nat", GOOD, True, 0, POLICY)
    _fail(guard, "nat", KNOWN_FOR + 1, 3)
    assert guard.judge("nat", GOOD, True, KNOWN_FOR + 2, POLICY) is Verdict.LOCKED
    assert guard.judge("nat", GOOD, True, KNOWN_FOR + 32, POLICY) is Verdict.OK


def test_the_lockout_ends_after_its_time():
    guard = BadKeyGuard()
    _fail(guard, "a", 0, 3)
    assert guard.locked_for("a", 30) == 0
    assert guard.judge("a", BAD, False, 30, POLICY) is Verdict.BAD


def test_failures_spread_over_more_than_the_window_do_not_lock():
    guard = BadKeyGuard()
    for minute in range(5):
        assert _fail(guard, "a", minute * 61, 2) == [Verdict.BAD, Verdict.BAD]


def test_memory_stays_bounded_under_many_addresses():
    guard = BadKeyGuard()
    for i in range(MAX_TRACKED * 2):
        guard.judge(f"addr-{i}", BAD, False, i * 100.0, POLICY)
    assert len(guard._records) <= MAX_TRACKED


def test_guesses_from_one_ipv6_slash_64_are_counted_together():
    # One host holds a whole /64: a new address per guess must not start a new count.
    guard = BadKeyGuard()
    verdicts = [guard.judge(f"2001:db8:1:2::{n:x}", BAD, False, 0, POLICY) for n in range(4)]
    assert verdicts == [Verdict.BAD] * 3 + [Verdict.LOCKED]
    assert guard.locked_for("2001:db8:1:2:ffff::1", 1) == 29
    assert guard.judge("2001:db8:1:3::1", BAD, False, 1, POLICY) is Verdict.BAD


def test_an_ipv4_mapped_address_is_counted_as_its_ipv4_address_alone():
    # On a dual-stack listener every IPv4 client is ::ffff:a.b.c.d, all in one /64.
    guard = BadKeyGuard()
    _fail(guard, "::ffff:10.0.0.1", 0, 3)
    assert guard.judge("::ffff:10.0.0.2", BAD, False, 1, POLICY) is Verdict.BAD
    assert guard.judge("10.0.0.1", BAD, False, 1, POLICY) is Verdict.LOCKED


def test_a_flood_of_guesses_from_many_addresses_does_not_lift_a_lockout():
    guard = BadKeyGuard()
    _fail(guard, "10.0.0.1", 0, 3)
    for i in range(MAX_TRACKED):
        guard.judge(f"192.0.2.{i}", BAD, False, 1, POLICY)  # each a new record
    assert guard.judge("10.0.0.1", BAD, False, 2, POLICY) is Verdict.LOCKED
    assert len(guard._records) <= MAX_TRACKED


PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)


def test_without_trusted_proxies_the_peer_is_the_client():
    assert client_address("10.0.0.5", "203.0.113.7", ()) == "10.0.0.5"


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client():
    assert client_address("10.0.0.5", "203.0.113.7", PROXIES) == "203.0.113.7"


def test_a_forwarded_for_from_an_untrusted_peer_is_ignored():
    assert client_address("198.51.100.1", "203.0.113.7", PROXIES) == "198.51.100.1"


def test_the_last_untrusted_hop_counts_not_what_the_client_wrote_first():
    forwarded = "1.2.3.4, 203.0.113.7, 10.0.0.9"
    assert client_address("10.0.0.5", forwarded, PROXIES) == "203.0.113.7"


def test_a_forwarded_hop_that_is_not_an_address_falls_back_to_the_peer():
    assert client_address("10.0.0.5", "not-an-ip", PROXIES) == "10.0.0.5"
