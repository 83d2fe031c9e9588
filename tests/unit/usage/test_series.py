"""The ledger as series over the last hour and day, on both stores: known rows in, known
buckets out."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hxgw.store import Database
from hxgw.usage import DAY, HOUR, Ledger, RecentUsage, UsageRow, usage_series
from hxgw.usage.recent import read_windows
from hxgw.usage.series import LATENCY_SAMPLES, percentile
from tests.unit.usage.rows import T0, row

# T0 is 15:06:40 UTC, NOW ten seconds later: the hour window ends at 15:07:00, the day
# window at 16:00:00; a time t is in bucket (t - start) // bucket seconds.
NOW = T0 + 10
HOUR_START = T0 + 20 - 3600  # 14:07:00
DAY_START = T0 + 3200 - 86400  # 16:00:00 the day before


def _fill(database: Database, tmp_path: Path, rows: list[UsageRow]) -> None:
    ledger = Ledger(database, tmp_path / "spool")
    for r in rows:
        ledger.record(r)
    ledger.close()


def _series(database: Database, window=HOUR) -> dict:
    with database.connect() as connection:
        return usage_series(connection, window, NOW)


def test_windows_end_with_the_bucket_holding_now_and_are_aligned_on_the_clock():
    assert HOUR.start(NOW) == HOUR_START and HOUR.buckets == 60
    assert DAY.start(NOW) == DAY_START and DAY.buckets == 24


def test_each_keys_requests_tokens_and_cost_fall_in_their_minute(database, tmp_path):
    _fill(database, tmp_path, [
        row(0, key_name="alice"),                      # 15:06:40, bucket 59
        row(1, key_name="alice", total_tokens=100),    # same minute
        row(-41, key_name="bob", cost=1.5),            # 15:05:59, bucket 58
        row(-3600, key_name="alice"),                  # 14:06:40, before the hour
        row(15, key_name="carol"),                     # 15:06:55, after now: still counted
        row(25, key_name="dave"),                      # 15:07:05, past the window
    ])
    series = _series(database)
    assert series["bucket_seconds"] == 60 and series["start"] == HOUR_START
    assert list(series["keys"]) == ["alice", "bob", "carol"]
    alice = series["keys"]["alice"]
    assert alice["requests"][58:] == [0, 2] and sum(alice["requests"]) == 2
    assert alice["tokens"][59] == 115 and alice["cost"][59] == pytest.approx(0.5)
    assert series["keys"]["bob"]["cost"][58] == pytest.approx(1.5)
    assert series["keys"]["carol"]["requests"][59] == 1


def test_a_time_late_in_its_bucket_is_not_rounded_into_the_next(database, tmp_path):
    """PostgreSQL's CAST rounds: 59.9 s past the window's start must stay in bucket 0."""
    _fill(database, tmp_path, [row(0, started=HOUR_START + 59.9, ended=HOUR_START + 60.5)])
    assert _series(database)["keys"]["alice"]["requests"][:2] == [1, 0]


def test_each_model_counts_errors_failovers_and_latency_percentiles(database, tmp_path):
    rows = [row(i, model="alpha", ended=T0 + i + (i + 1) / 10) for i in range(10)]
    rows += [row(10, model="alpha", status=502, failovers=2),
             row(11, model=None, status=429, total_tokens=0, cost=0.0)]
    _fill(database, tmp_path, rows)
    models = _series(database)["models"]
    assert list(models) == ["-", "alpha"]
    alpha = models["alpha"]
    assert alpha["requests"][59] == 11 and alpha["errors"][59] == 1
    assert alpha["failovers"][59] == 2 and alpha["tokens"][59] == 165
    latencies = sorted([(i + 1) / 10 for i in range(10)] + [0.5])
    assert alpha["p50_latency"][59] == pytest.approx(0.5)
    assert alpha["p99_latency"][59] == pytest.approx(percentile(latencies, 0.99))
    assert alpha["p50_latency"][58] is None and alpha["requests"][58] == 0
    assert models["-"]["errors"][59] == 1


def test_the_day_window_buckets_by_hour(database, tmp_path):
    _fill(database, tmp_path, [row(0), row(-7200, model="beta"), row(-83_000)])
    series = _series(database, DAY)
    assert series["bucket_seconds"] == 3600 and len(series["keys"]["alice"]["requests"]) == 24
    assert series["models"]["alpha"]["requests"][23] == 1
    assert series["models"]["beta"]["requests"][21] == 1
    assert series["models"]["alpha"]["requests"][0] == 1  # 83,000 s ago: the first hour


def test_latencies_are_sampled_at_most_so_many_per_model_and_bucket(database, tmp_path):
    """The sample is the lowest request ids: here the first LATENCY_SAMPLES requests."""
    count = LATENCY_SAMPLES + 20
    rows = [row(n, started=T0 + n / 100, ended=T0 + n / 100 + n) for n in range(count)]
    _fill(database, tmp_path, rows)  # all in T0's minute
    alpha = _series(database)["models"]["alpha"]
    assert alpha["requests"][59] == count
    sampled = [float(n) for n in range(LATENCY_SAMPLES)]
    assert alpha["p99_latency"][59] == pytest.approx(percentile(sampled, 0.99), abs=1e-3)
    assert alpha["p50_latency"][59] == pytest.approx(percentile(sampled, 0.5), abs=1e-3)


def test_an_empty_store_gives_empty_series(database):
    assert _series(database)["keys"] == {} and _series(database)["models"] == {}


def test_percentile_interpolates_between_ranks_like_percentile_cont():
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([1.0, 2.0], 0.99) == pytest.approx(1.99)
    assert percentile([7.0], 0.99) == 7.0


def test_an_unreachable_store_is_reported_not_raised(tmp_path):
    from hxgw.store.sqlite import SqliteDatabase

    missing = SqliteDatabase(tmp_path / "none.sqlite3", create=False)
    usage = read_windows(missing, NOW)
    assert usage["ledger"] == "unreachable" and "none.sqlite3" in usage["error"]


async def test_without_a_ledger_the_usage_says_it_is_off():
    assert await RecentUsage(lambda: None).read() == {"ledger": "off"}


async def test_a_read_is_kept_until_its_window_is_due_again(database, tmp_path):
    ledger = Ledger(database, tmp_path / "spool", batch_interval=0.05)
    ledger.start()
    try:
        recent = RecentUsage(lambda: ledger)
        first = await recent.read()
        assert first["ledger"] == "on" and set(first["windows"]) == {"hour", "day"}
        assert first["behind_seconds_at_most"] == pytest.approx(0.05 + HOUR.refresh)
        assert first["windows"]["day"]["behind_seconds_at_most"] == pytest.approx(
            0.05 + DAY.refresh)
        assert await recent.read() is first
    finally:
        ledger.close()


async def test_each_window_is_read_again_after_its_own_refresh(database, tmp_path):
    ledger = Ledger(database, tmp_path / "spool", batch_interval=0.05)
    ledger.start()
    try:
        often, seldom = replace(HOUR, refresh=0.0), replace(DAY, refresh=3600.0)
        recent = RecentUsage(lambda: ledger, windows=(often, seldom))
        first = await recent.read()
        second = await recent.read()
        assert second["windows"]["hour"] is not first["windows"]["hour"]
        assert second["windows"]["day"] is first["windows"]["day"]
    finally:
        ledger.close()
