"""The status page's request rate: a total per request, the clock read once a second."""

from __future__ import annotations

from hxgw.runtime import RequestRate


def _steady(rate: RequestRate, per_second: int, seconds: range) -> None:
    for second in seconds:
        rate.total += per_second
        rate.tick(float(second))


def test_the_rate_counts_the_requests_since_the_oldest_tick_of_the_last_minute():
    rate = RequestRate(since=0.0)
    _steady(rate, 10, range(1, 91))
    snapshot = rate.snapshot(inflight=0, now=90.0)
    assert snapshot["total"] == 900
    assert snapshot["per_second"] == 10.0


def test_requests_older_than_a_minute_no_longer_count():
    rate = RequestRate(since=0.0)
    _steady(rate, 100, range(1, 11))
    _steady(rate, 0, range(11, 101))
    assert rate.snapshot(inflight=0, now=100.0)["per_second"] == 0.0


def test_before_the_first_tick_the_rate_counts_from_the_start():
    rate = RequestRate(since=50.0)
    rate.total = 30
    assert rate.snapshot(inflight=2, now=53.0) == {
        "total": 30, "per_second": 10.0, "inflight": 2, "active_streams": 0,
    }


def test_requests_since_the_last_tick_count_too():
    rate = RequestRate(since=0.0)
    _steady(rate, 10, range(1, 31))
    rate.total += 25  # half a second's worth, not ticked yet
    # against the first tick (second 1, total 10): 315 requests in 29.5 s
    assert rate.snapshot(inflight=0, now=30.5)["per_second"] == round(315 / 29.5, 2)
