"""Rows billed by whichever answer first carries them: queued once, what each adds."""

from __future__ import annotations

from hxgw.usage.once import REMEMBERED, Added, OnceRows
from tests.unit.usage.rows import row


def test_a_row_adds_all_it_bills_once_and_nothing_when_it_comes_again():
    once = OnceRows()
    assert once.take(row(1, cost=0.5).values()) == Added("alice", 10, 5, 0.5)
    assert once.take(row(1, cost=0.5).values()) is None


def test_a_report_after_its_estimate_adds_the_difference():
    once = OnceRows()
    once.take(row(1, usage_source="estimated", prompt_tokens=10, cost=0.25).values())
    reported = row(1, usage_source="reported", prompt_tokens=12, cost=0.3).values()
    assert once.take(reported) == Added("alice", 2, 0, 0.3 - 0.25)
    assert once.take(reported) is None


def test_a_report_read_by_another_key_adds_its_difference_to_the_estimate_s_key():
    # As the store keeps the row: under the key whose stream made the response.
    once = OnceRows()
    once.take(row(1, usage_source="estimated", prompt_tokens=10, cost=0.25).values())
    reported = row(1, key_name="bob", usage_source="reported", prompt_tokens=12, cost=0.3)
    assert once.take(reported.values()) == Added("alice", 2, 0, 0.3 - 0.25)


def test_an_estimate_after_the_report_adds_nothing_as_the_store_keeps_the_report():
    once = OnceRows()
    once.take(row(1, usage_source="reported").values())
    assert once.take(row(1, usage_source="estimated").values()) is None


def test_the_oldest_rows_are_forgotten_past_those_remembered():
    once = OnceRows()
    for n in range(REMEMBERED + 1):
        once.take(row(n).values())
    assert once.take(row(0).values()) is not None  # forgotten: the store keeps one row
    assert once.take(row(REMEMBERED).values()) is None
