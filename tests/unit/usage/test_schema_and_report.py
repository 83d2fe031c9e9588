"""The ledger's schema from its first version, and the totals `hxgw usage` prints."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hxgw.store import Database
from hxgw.store.migrate import migrate, schema_version
from hxgw.usage import MIGRATIONS, Ledger, Totals, UsageRow, ledger_exists, totals
from hxgw.usage.spend import spent_this_period
from tests.unit.usage.rows import T0, row, stored_ids


def _indexes(database: Database) -> set[str]:
    with database.connect() as connection:
        if connection.dialect == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
        else:
            sql = "SELECT indexname FROM pg_indexes WHERE tablename = ?"
        return {r[0] for r in connection.execute(sql, ("usage_ledger",))}


V1_COLUMNS = ("request_id", "key_name", "route", "model_group", "model", "status",
              "prompt_tokens", "completion_tokens", "total_tokens", "cost", "stream",
              "disconnected", "failovers", "started", "first_byte", "ended")
V1_INSERT = (f"INSERT INTO usage_ledger ({', '.join(V1_COLUMNS)})"
             f" VALUES ({', '.join('?' for _ in V1_COLUMNS)})")


def test_a_v1_ledger_is_migrated_up_keeping_its_rows(database: Database, tmp_path: Path):
    first = row(1)
    with database.connect() as connection:
        migrate(connection, MIGRATIONS, upto=1)
        with connection.transaction():  # as a gateway that knew only v1 wrote it
            connection.execute(V1_INSERT, [getattr(first, c) for c in V1_COLUMNS])
    assert "usage_ledger_key_started" not in _indexes(database)
    ledger = Ledger(database, tmp_path / "spool")
    ledger.record(row(2))
    ledger.close()
    with database.connect() as connection:
        assert schema_version(connection, "usage") == len(MIGRATIONS) == 8
        sources = connection.execute(
            "SELECT request_id, usage_source, outcome FROM usage_ledger ORDER BY request_id")
    assert "usage_ledger_key_started" in _indexes(database)
    assert sorted(stored_ids(database)) == ["req-000001", "req-000002"]
    assert [tuple(r) for r in sources] == [("req-000001", "none", "ok"),
                                           ("req-000002", "none", "ok")]


def _fill(database: Database, tmp_path: Path, rows: list[UsageRow]) -> None:
    ledger = Ledger(database, tmp_path / "spool")
    for r in rows:
        ledger.record(r)
    ledger.close()


KNOWN = [
    row(0, key_name="alice", model="alpha"),
    row(1, key_name="alice", model="beta", status=502, failovers=1, ended=T0 + 1 + 1.5),
    row(2, key_name="bob", model="alpha", prompt_tokens=100, total_tokens=105, cost=1.0),
    row(86_400, key_name="bob", model=None, status=429, prompt_tokens=0, completion_tokens=0,
        total_tokens=0, cost=0.0),
]


def test_totals_by_key_add_up_each_keys_rows(database: Database, tmp_path: Path):
    _fill(database, tmp_path, KNOWN)
    with database.connect() as connection:
        result = totals(connection, since=T0, by="key")
    assert result == [
        Totals(group="alice", requests=2, prompt_tokens=20, completion_tokens=10,
               total_tokens=30, cost=0.5, errors=1, failovers=1, p50_latency=1.0),
        Totals(group="bob", requests=2, prompt_tokens=100, completion_tokens=5,
               total_tokens=105, cost=1.0, errors=1, failovers=0, p50_latency=0.5),
    ]


def test_errors_count_a_stream_the_upstream_broke_off_not_one_the_client_left(
    database: Database, tmp_path: Path
):
    _fill(database, tmp_path, [row(0, outcome="upstream_reset"), row(1, outcome="client_gone"),
                               row(2), row(3, outcome="client_stalled")])
    with database.connect() as connection:
        (alice,) = totals(connection, since=T0, by="key")
    assert (alice.requests, alice.errors) == (4, 1)


def test_the_median_latency_leaves_out_requests_no_model_answered(
    database: Database, tmp_path: Path
):
    refused = [row(n, model=None, status=429, ended=T0 + n + 0.001) for n in range(1, 4)]
    _fill(database, tmp_path, [row(0, ended=T0 + 2.0), *refused])
    with database.connect() as connection:
        (alice,) = totals(connection, since=T0, by="key")
    assert (alice.requests, alice.p50_latency) == (4, 2.0)


def test_a_row_billed_apart_counts_its_tokens_but_is_no_request_and_no_latency(
    database: Database, tmp_path: Path
):
    # A batch's row runs from the batch's making to its end: hours in the median, and one
    # request more than the key made (hxgw_key_requests counts none for it).
    batch = row(1, request_id="usage-of-batch_1", prompt_tokens=1000, total_tokens=1005,
                ended=T0 + 1 + 7200.0, outcome="cancelled")
    _fill(database, tmp_path, [row(0), batch])
    with database.connect() as connection:
        (alice,) = totals(connection, since=T0, by="key")
    assert (alice.requests, alice.prompt_tokens, alice.p50_latency) == (1, 1010, 0.5)
    assert alice.errors == 0  # a cancelled batch is no request that failed


def test_totals_by_model_name_a_row_without_a_model_dash(database: Database, tmp_path: Path):
    _fill(database, tmp_path, KNOWN)
    with database.connect() as connection:
        result = totals(connection, since=T0, by="model")
    assert [(t.group, t.requests) for t in result] == [("(no model)", 1), ("alpha", 2), ("beta", 1)]


def test_totals_by_end_user_put_the_requests_that_named_none_first_as_none(
    database: Database, tmp_path: Path
):
    rows = [row(0, end_user="user-1"), row(1, end_user="user-2"), row(2, end_user="user-1"),
            row(3)]
    _fill(database, tmp_path, rows)
    with database.connect() as connection:
        result = totals(connection, since=T0, by="user")
    assert [(t.group, t.requests) for t in result] == [(None, 1), ("user-1", 2), ("user-2", 1)]


def test_an_end_user_a_client_named_no_user_is_not_counted_with_those_that_named_none(
    database: Database, tmp_path: Path
):
    _fill(database, tmp_path, [row(0, end_user="(no user)"), row(1)])
    with database.connect() as connection:
        result = totals(connection, since=T0, by="user")
    assert [(t.group, t.requests) for t in result] == [(None, 1), ("(no user)", 1)]


def test_totals_by_team_put_the_keys_in_none_first_and_a_team_filters_its_own(
    database: Database, tmp_path: Path
):
    rows = [row(0, team="search"), row(1, key_name="bob", team="search"), row(2, team="ads"),
            row(3)]
    _fill(database, tmp_path, rows)
    with database.connect() as connection:
        by_team = totals(connection, since=T0, by="team")
        searched = totals(connection, since=T0, by="key", team="search")
    assert [(t.group, t.requests) for t in by_team] == [(None, 1), ("ads", 1), ("search", 2)]
    assert [(t.group, t.requests) for t in searched] == [("alice", 1), ("bob", 1)]


def test_the_top_lines_are_those_that_cost_most_then_those_with_most_requests(
    database: Database, tmp_path: Path
):
    rows = [row(0, end_user="ann", cost=0.5), row(1, end_user="bo", cost=0.25),
            row(2, end_user="bo", cost=0.25), row(3, end_user="cy", cost=0.5),
            row(4, end_user="dee", cost=0.125)]
    _fill(database, tmp_path, rows)
    with database.connect() as connection:
        result = totals(connection, since=T0, by="user", top=2)
    assert [(t.group, t.cost) for t in result] == [("bo", 0.5), ("ann", 0.5)]


def test_totals_by_day_use_utc_days(database: Database, tmp_path: Path):
    _fill(database, tmp_path, KNOWN)
    with database.connect() as connection:
        result = totals(connection, since=T0, by="day")
    assert [(t.group, t.requests) for t in result] == [("2025-06-15", 3), ("2025-06-16", 1)]


def test_totals_keep_to_the_window_and_the_key(database: Database, tmp_path: Path):
    _fill(database, tmp_path, KNOWN)
    with database.connect() as connection:
        result = totals(connection, since=T0 + 2, by="key", key="bob")
        assert totals(connection, since=time.time(), by="key") == []
    assert [(t.group, t.requests) for t in result] == [("bob", 2)]


@pytest.mark.parametrize("created", [False, True])
def test_ledger_exists_only_once_a_gateway_created_it(
    database: Database, tmp_path: Path, created: bool
):
    if created:
        _fill(database, tmp_path, [])
    with database.connect() as connection:
        assert ledger_exists(connection) is created


def test_the_spend_this_period_counts_each_budgeted_key_since_its_period_began(
    database: Database, tmp_path: Path
):
    day = 86_400
    start = T0 - T0 % day  # the UTC day T0 is in
    _fill(database, tmp_path, [
        row(0, key_name="alice", cost=1.0, started=start - 5),  # the day before
        row(1, key_name="alice", cost=2.0, started=start + 5),
        row(2, key_name="alice", cost=0.5, started=start + 6),
        row(3, key_name="bob", cost=4.0, started=start + 7),  # no budget: not asked
        row(4, key_name="carol", cost=0.0, started=start + 8),
    ])
    with database.connect() as connection:
        spent = spent_this_period(connection, {day: ["alice", "carol"]}, T0)
    assert spent == {("alice", day): (int(T0 // day), 2.5)}
