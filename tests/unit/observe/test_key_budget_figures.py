"""A key's budget gauges as the limits step feeds them: each decision says what the
limiter counted, each charge adds what a request cost, whichever request's decision came
last."""

from __future__ import annotations

import pytest

from hxgw.observe.key_metrics import KeyFigures

DAY = 86_400
NOW = 1_796_000_000.0 - 1_796_000_000.0 % DAY + 3_600  # an hour into a day


def _spent(figures: KeyFigures, now: float) -> float | None:
    for family in figures.budgets.families(None, now):
        if family.name == "hxgw_key_budget_spent":
            return next((s.value for s in family.samples if s.labels["key"] == "app"), None)
    return None


def test_two_overlapping_requests_of_a_key_are_both_in_its_spend():
    figures = KeyFigures()
    figures.budgets.seen("app", 5.0, 0.0, NOW, DAY)  # the first is decided
    figures.budgets.seen("app", 5.0, 0.0, NOW + 1, DAY)  # the second, before the first ends
    figures.budgets.charged("app", 1.0, NOW + 2)
    figures.budgets.charged("app", 1.0, NOW + 3)
    assert _spent(figures, NOW + 4) == pytest.approx(2.0)


def test_a_charge_in_a_new_period_begins_its_spend():
    figures = KeyFigures()
    figures.budgets.seen("app", 5.0, 4.0, NOW, DAY)
    figures.budgets.charged("app", 0.5, NOW + DAY)  # decided yesterday, ended today
    assert _spent(figures, NOW + DAY) == pytest.approx(0.5)


def test_a_spend_of_the_period_before_reads_nothing_in_the_next():
    figures = KeyFigures()
    figures.budgets.seen("app", 5.0, 4.0, NOW, DAY)
    assert _spent(figures, NOW + DAY) == 0.0


def _tokens(figures: KeyFigures) -> dict[str, float]:
    return {sample.labels["kind"]: sample.value
            for family in figures.families() if family.name == "hxgw_key_tokens"
            for sample in family.samples if sample.labels.get("key") == "app"}


def test_usage_billed_apart_adds_to_the_key_s_tokens():
    figures = KeyFigures()
    figures.billed("app", 10, 5, 0.25)
    assert _tokens(figures) == {"prompt": 10, "completion": 5}


def test_a_report_below_its_estimate_leaves_the_key_s_counters_as_they_were():
    # A counter that falls is read by Prometheus as a reset: increase() jumped by all of it.
    figures = KeyFigures()
    figures.billed("app", 500, 0, 0.01)
    figures.billed("app", -480, 3, -0.008)
    assert _tokens(figures) == {"prompt": 500, "completion": 3}
