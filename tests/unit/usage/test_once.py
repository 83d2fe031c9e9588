"""Rows billed by whichever answer first carries them: queued once by a worker, and what
the store took of each told once, whichever worker or instance wrote it."""

from __future__ import annotations

from pathlib import Path

from hxgw.store import Database
from hxgw.usage import Ledger, UsageRow
from hxgw.usage.once import REMEMBERED, Added, OnceRows
from tests.unit.usage.rows import row


def _apart(n: int = 1, **fields: object) -> UsageRow:
    return row(n, request_id=f"usage-of-batch_{n}", **fields)


def _written(database: Database, tmp_path: Path, *rows: UsageRow) -> list[Added]:
    """What a ledger of its own (another worker's) told of writing `rows`."""
    told: list[Added] = []
    ledger = Ledger(database, tmp_path / "spool", on_billed=told.append)
    for each in rows:
        assert ledger.record_once(each.values())
    ledger.close()
    return told


def test_a_row_is_queued_once_and_not_again():
    once = OnceRows()
    assert once.take(row(1).values())
    assert not once.take(row(1).values())


def test_a_report_after_its_queued_estimate_is_queued():
    once = OnceRows()
    once.take(row(1, usage_source="estimated").values())
    assert once.take(row(1, usage_source="reported").values())
    assert not once.take(row(1, usage_source="reported").values())


def test_an_estimate_after_its_queued_report_is_not_queued():
    once = OnceRows()
    once.take(row(1, usage_source="reported").values())
    assert not once.take(row(1, usage_source="estimated").values())


def test_the_oldest_rows_are_forgotten_past_those_remembered():
    once = OnceRows()
    for n in range(REMEMBERED + 1):
        once.take(row(n).values())
    assert once.take(row(0).values())  # forgotten: the store keeps one row
    assert not once.take(row(REMEMBERED).values())


def test_as_many_rows_as_remembered_are_all_remembered():
    once = OnceRows()
    for n in range(REMEMBERED):
        once.take(row(n).values())
    assert not once.take(row(0).values())


def test_a_row_billed_apart_is_told_all_it_adds(database: Database, tmp_path: Path):
    assert _written(database, tmp_path, _apart(cost=0.5)) == [Added("alice", 10, 5, 0.5)]


def test_a_row_two_workers_write_is_told_by_the_first_alone(database: Database, tmp_path: Path):
    # Each worker read the same ended batch: the store keeps one row, the metrics one.
    assert _written(database, tmp_path, _apart()) == [Added("alice", 10, 5, 0.25)]
    assert _written(database, tmp_path, _apart()) == []


def test_a_report_after_its_estimate_is_told_the_difference_under_the_estimate_s_key(
    database: Database, tmp_path: Path
):
    # A background response's stream cut short on one worker, read finished by another
    # key on another: the key whose stream made it pays, as the store keeps it.
    _written(database, tmp_path, _apart(usage_source="estimated", prompt_tokens=10, cost=0.25))
    reported = _apart(key_name="bob", usage_source="reported", prompt_tokens=12, cost=0.3)
    (told,) = _written(database, tmp_path, reported)
    assert told[:3] == ("alice", 2, 0)
    assert abs(told.cost - 0.05) < 1e-9


def test_an_estimate_after_its_report_is_told_nothing(database: Database, tmp_path: Path):
    _written(database, tmp_path, _apart(usage_source="reported"))
    assert _written(database, tmp_path, _apart(usage_source="estimated")) == []


def test_a_request_s_row_is_told_nothing(database: Database, tmp_path: Path):
    # Its key's metrics counted it as the request ended.
    assert _written(database, tmp_path, row(1)) == []
