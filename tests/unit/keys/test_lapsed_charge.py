"""What a request whose lease ran out (its estimate charged then) costs its key's period
once it says what it cost (hxgw.keys.window.lapsed_charge; limits.lua does the same)."""

from __future__ import annotations

import pytest

from hxgw.keys.window import lapsed_charge


def test_in_its_own_period_it_is_charged_what_it_cost_in_place_of_its_estimate():
    assert lapsed_charge(3.0, 0.5, 1.0, same_period=True) == pytest.approx(2.5)


def test_its_credit_never_takes_a_period_s_spend_below_nothing():
    # A spend read back from the ledger (a restart, a Redis that lost its data) holds
    # none of the estimate: given back, it went below zero, and let the key overspend.
    assert lapsed_charge(0.1, 0.0, 0.5, same_period=True) == 0.0


def test_in_a_later_period_it_is_charged_its_excess_and_given_no_credit():
    assert lapsed_charge(3.0, 2.0, 0.5, same_period=False) == pytest.approx(4.5)
    assert lapsed_charge(3.0, 0.0, 0.5, same_period=False) == 3.0
