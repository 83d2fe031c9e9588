"""The ledger as series over the last hour and day, on both stores: known rows in, known
buckets out."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hxgw.store import Database
from hxgw.usage import DAY, HOUR, Ledger, RecentUsage, UsageRow, usage_series
from hxgw.usage.recent import read_windows
from hxgw.usage.series import LATENCY_SAMPLES, percentile, with_last
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


def test_a_bucket_s_cost_is_summed_without_float_noise_as_hxgw_usage_says_it(
    database, tmp_path
):
    # 0.1 + 0.2 summed is 0.30000000000000004: a jq check against the CLI failed.
    _fill(database, tmp_path, [row(0, cost=0.1), row(1, cost=0.2)])
    series = _series(database)
    assert series["keys"]["alice"]["cost"][59] == 0.3
    assert next(iter(series["models"].values()))["cost"][59] == 0.3


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
    assert list(models) == ["(no model)", "alpha"]
    alpha = models["alpha"]
    assert alpha["requests"][59] == 11 and alpha["errors"][59] == 1
    assert alpha["failovers"][59] == 2 and alpha["tokens"][59] == 165
    latencies = sorted([(i + 1) / 10 for i in range(10)] + [0.5])
    assert alpha["p50_latency"][59] == pytest.approx(0.5)
    assert alpha["p99_latency"][59] == pytest.approx(percentile(latencies, 0.99))
    assert alpha["p50_latency"][58] is None and alpha["requests"][58] == 0
    assert models["(no model)"]["errors"][59] == 1


def test_a_row_billed_apart_counts_its_tokens_but_is_no_request_and_no_latency(
    database, tmp_path
):
    batch = row(1, request_id="usage-of-batch_1", total_tokens=1000, ended=T0 + 1 + 7200.0)
    _fill(database, tmp_path, [row(0), batch])
    series = _series(database)
    alpha, alice = series["models"]["alpha"], series["keys"]["alice"]
    assert (alice["requests"][59], alice["tokens"][59]) == (1, 1015)
    assert (alpha["requests"][59], alpha["p99_latency"][59]) == (1, pytest.approx(0.5))


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


async def test_a_read_is_kept_for_a_few_seconds(database, tmp_path):
    ledger = Ledger(database, tmp_path / "spool", batch_interval=0.05)
    recent = RecentUsage(lambda: ledger)
    first = await recent.read()
    assert first["ledger"] == "on" and set(first["windows"]) == {"hour", "day"}
    assert first["behind_seconds_at_most"] == pytest.approx(0.05 + HOUR.refresh)
    assert await recent.read() is first


async def test_between_whole_reads_only_the_days_last_bucket_is_read_again(database, tmp_path):
    hour = math.floor(time.time() / 3600) * 3600  # the day window's last bucket begins here

    def at(started: float, n: int) -> UsageRow:
        return row(n, started=started, first_byte=started + 0.1, ended=started + 0.5)

    _fill(database, tmp_path, [at(hour - 7200 + 1, 1)])  # two hours ago
    ledger = Ledger(database, tmp_path / "spool", batch_interval=0.05)
    recent = RecentUsage(
        lambda: ledger, windows=(replace(HOUR, refresh=0.0), replace(DAY, refresh=3600.0))
    )
    first = (await recent.read())["windows"]["day"]["keys"]["alice"]["requests"]
    # One row now, and one written late for three hours ago.
    _fill(database, tmp_path, [at(hour + 0.5, 2), at(hour - 10800 + 1, 3)])
    second = (await recent.read())["windows"]["day"]["keys"]["alice"]["requests"]
    if math.floor(time.time() / 3600) * 3600 != hour:
        pytest.skip("an hour began during the test: the day was read whole again")
    assert (first[-4:], second[-4:]) == ([0, 1, 0, 0], [0, 1, 0, 1])


def _window(start: float, keys: dict, buckets: int = 3) -> dict:
    return {"bucket_seconds": 60, "start": start, "buckets": buckets, "keys": keys, "models": {}}


def test_a_last_bucket_takes_the_place_of_the_old_one_name_by_name():
    old = _window(0.0, {"a": {"requests": [1, 2, 3]}, "b": {"requests": [4, 5, 6]}})
    last = _window(120.0, {"b": {"requests": [9]}, "c": {"requests": [7]}}, buckets=1)
    spliced = with_last(old, last)
    assert spliced is not None and spliced["keys"] == {
        "a": {"requests": [1, 2, 0]}, "b": {"requests": [4, 5, 9]}, "c": {"requests": [0, 0, 7]}}


def test_a_missing_latency_is_none_not_zero_when_spliced():
    old = {**_window(0.0, {}), "models": {"m": {"p50_latency": [0.5, 0.5, 0.5]}}}
    spliced = with_last(old, {**_window(120.0, {}, buckets=1), "models": {}})
    assert spliced is not None and spliced["models"]["m"]["p50_latency"] == [0.5, 0.5, None]


def test_a_last_bucket_of_a_newer_bucket_is_not_spliced():
    old = _window(0.0, {"a": {"requests": [1, 2, 3]}})
    assert with_last(old, _window(180.0, {}, buckets=1)) is None
