"""An upstream's `created_at`, as the rows of background responses and batches take it."""

from __future__ import annotations

import time

import pytest

from hxgw.pipeline.billing.background import unix_time


def test_a_time_in_seconds_is_taken_as_it_is():
    assert unix_time(1_764_000_000) == 1_764_000_000.0


def test_a_time_in_milliseconds_is_read_as_seconds():
    assert unix_time(1_764_000_000_123) == pytest.approx(1_764_000_000.123)


@pytest.mark.parametrize("value", [0, -10**18, 1e300, 2**64, True, "1764000000", None])
def test_what_is_no_time_of_an_upstream_s_making_is_none(value: object):
    assert unix_time(value) is None


def test_a_time_ahead_of_the_gateway_s_clock_by_more_than_an_hour_is_none():
    assert unix_time(time.time() + 7200) is None
    assert unix_time(time.time() + 60) is not None
