"""Money and long waits as people read them."""

import pytest

from hxgw.units import counted, hours, money


@pytest.mark.parametrize(("amount", "shown"), [
    (0.0, "0.00"), (5.0, "5.00"), (0.5, "0.50"), (1234.567, "1234.57"), (0.01, "0.01"),
])
def test_an_amount_of_a_cent_or_more_is_shown_in_cents(amount: float, shown: str):
    assert money(amount) == shown


@pytest.mark.parametrize(("amount", "shown"), [
    (0.0042, "0.0042"), (0.000042, "0.000042"), (0.00001234, "0.000012"), (0.0099, "0.0099"),
])
def test_a_smaller_amount_keeps_two_significant_digits_without_an_exponent(
    amount: float, shown: str
):
    assert money(amount) == shown


def test_an_amount_below_a_hundred_millionth_is_shown_as_less_than_one():
    assert money(1e-12) == "<0.00000001"


@pytest.mark.parametrize(("seconds", "shown"), [
    (25025, "6h58m"), (60, "1m"), (61, "2m"), (3600, "1h0m"), (30 * 86400, "720h0m"),
])
def test_a_wait_is_hours_and_minutes_rounded_up(seconds: float, shown: str):
    assert hours(seconds) == shown


def test_one_thing_is_said_without_a_plural_s():
    assert (counted(1, "group"), counted(2, "group"), counted(0, "model")) == (
        "1 group", "2 groups", "0 models")
