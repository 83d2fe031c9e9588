"""How the gateway reads an upstream's Retry-After and retry-after-ms."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from hxgw.pipeline.failover.waits import retry_seconds, spared_for, wait_ms


def test_retry_after_in_seconds_is_read():
    assert retry_seconds("2") == 2


def test_retry_after_as_an_http_date_is_read_as_seconds_from_now():
    assert retry_seconds(formatdate(time.time() + 30, usegmt=True)) in (29, 30, 31)


@pytest.mark.parametrize("value", ["\xb2", "\xb9", "\xb3"])  # latin-1 superscripts
def test_a_retry_after_of_a_digit_int_cannot_read_is_ignored(value: str):
    assert value.isdigit()  # what once let it through to int()
    assert retry_seconds(value) is None
    assert wait_ms({"Retry-After": value}) is None
    assert wait_ms({"retry-after-ms": value}) is None


@pytest.mark.parametrize("value", [
    "0", "-1", "7200", "soon", "", "1.5",
    # A year past any C integer: the date parser overflows.
    "Mon, 01 Jan 99999999999999999999 00:00:00 GMT", "Dec 9999999999 00:00:00 Jan 1",
])
def test_a_retry_after_that_is_no_sane_wait_is_ignored(value: str):
    assert retry_seconds(value) is None


def test_retry_after_ms_comes_before_retry_after():
    assert wait_ms({"retry-after-ms": "250", "Retry-After": "9"}) == 250


@pytest.mark.parametrize("value", ["9" * 5000, "9" * 11])
def test_a_retry_after_of_more_digits_than_int_reads_is_no_sane_wait(value: str):
    assert retry_seconds(value) is None
    assert spared_for({"Retry-After": value}) is None
    assert spared_for({"retry-after-ms": value}) is None


def test_a_retry_after_date_already_past_is_no_wait_not_a_negative_one():
    # Passed on as the shortest wait, a negative Retry-After is one no client can read.
    assert wait_ms({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0
