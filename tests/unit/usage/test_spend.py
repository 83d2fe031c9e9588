"""What a budgeted key spent this period, as a starting limiter reads it: the store's rows
and those the spool still holds, each counted once."""

from __future__ import annotations

from pathlib import Path

from hxgw.store import Database, open_database
from hxgw.usage import Ledger
from hxgw.usage.spend import ONE_USERS_COST, spent_so_far, users_spent_so_far
from hxgw.usage.spool import Spool
from tests.unit.usage.rows import T0, row

DAY = 86_400
PERIOD = int(T0 // DAY)


def _stored(database: Database, tmp_path: Path, *rows: object) -> None:
    ledger = Ledger(database, tmp_path / "ledger-spool")
    for r in rows:
        ledger.record(r)  # type: ignore[arg-type]
    ledger.close()


def _spooled(directory: Path, *rows: object) -> Spool:
    spool = Spool(directory, 1 << 20)
    spool.add([r.values() for r in rows])  # type: ignore[attr-defined]
    spool.close()
    return Spool(directory, 0)


def test_the_spend_is_the_store_s_and_the_spool_s(database: Database, tmp_path: Path):
    _stored(database, tmp_path, row(1, cost=1.0))
    spool = _spooled(tmp_path / "spool", row(2, cost=0.5))
    with database.connect() as connection:
        spent = spent_so_far(connection, spool, {DAY: ["alice"]}, T0 + 10)
    assert spent == {("alice", DAY): (PERIOD, 1.5)}


def test_a_spooled_row_the_store_already_holds_counts_once(database: Database, tmp_path: Path):
    # A replay that committed, its file not deleted yet: as the store comes back, when a
    # key read for the first time is seeded while the ledger replays.
    _stored(database, tmp_path, row(1, cost=1.0), row(2, cost=0.5))
    spool = _spooled(tmp_path / "spool", row(2, cost=0.5), row(3, cost=0.25))
    with database.connect() as connection:
        spent = spent_so_far(connection, spool, {DAY: ["alice"]}, T0 + 10)
    assert spent == {("alice", DAY): (PERIOD, 1.75)}


def test_without_the_store_the_spool_alone_counts(tmp_path: Path):
    spool = _spooled(tmp_path / "spool", row(2, cost=0.5), row(3, cost=0.25, key_name="bob"))
    assert spent_so_far(None, spool, {DAY: ["alice"]}, T0 + 10) == {("alice", DAY): (PERIOD, 0.5)}


def test_a_row_in_two_spool_files_counts_once(database: Database, tmp_path: Path):
    # A write that failed midway and was spooled again, or rows rescued while the
    # writer kept them too: one row, spooled twice.
    _spooled(tmp_path / "spool", row(2, cost=0.5))
    spool = _spooled(tmp_path / "spool", row(2, cost=0.5), row(3, cost=0.25))
    with database.connect() as connection:
        spent = spent_so_far(connection, spool, {DAY: ["alice"]}, T0 + 10)
    assert spent == {("alice", DAY): (PERIOD, 0.75)}


def test_a_spooled_row_of_the_period_before_is_not_counted(tmp_path: Path):
    spool = _spooled(tmp_path / "spool", row(1, cost=0.5, started=PERIOD * DAY - 1))
    assert spent_so_far(None, spool, {DAY: ["alice"]}, T0 + 10) == {}


def test_a_stored_row_begun_the_instant_the_period_began_counts(
    database: Database, tmp_path: Path
):
    _stored(database, tmp_path, row(1, cost=1.0, started=PERIOD * DAY))
    spool = _spooled(tmp_path / "spool")
    with database.connect() as connection:
        spent = spent_so_far(connection, spool, {DAY: ["alice"]}, T0 + 10)
    assert spent == {("alice", DAY): (PERIOD, 1.0)}


def test_more_spooled_rows_than_one_look_up_takes_count_once_each(
    database: Database, tmp_path: Path
):
    rows = [row(n, cost=1.0) for n in range(250)]  # the store holds them all
    _stored(database, tmp_path, *rows)
    spool = _spooled(tmp_path / "spool", *rows)
    with database.connect() as connection:
        spent = spent_so_far(connection, spool, {DAY: ["alice"]}, T0 + 300)
    assert spent == {("alice", DAY): (PERIOD, 250.0)}


def test_each_end_user_s_spend_is_the_store_s_and_the_spool_s_apart(
    database: Database, tmp_path: Path
):
    _stored(database, tmp_path, row(1, cost=1.0, end_user="ann"), row(2, cost=0.5),
            row(3, cost=0.25, end_user="bo"), row(4, cost=2.0, end_user="ann", key_name="bob"))
    spool = _spooled(tmp_path / "spool", row(5, cost=0.125, end_user="ann"),
                     row(3, cost=0.25, end_user="bo"))
    with database.connect() as connection:
        spent = users_spent_so_far(connection, spool, {DAY: ["alice"]}, T0 + 10)
    assert spent == {("alice", "ann", DAY): (PERIOD, 1.125), ("alice", "bo", DAY): (PERIOD, 0.25)}


def test_one_end_user_s_spend_may_be_read_alone(database: Database, tmp_path: Path):
    _stored(database, tmp_path, row(1, cost=1.0, end_user="ann"), row(2, cost=0.25, end_user="bo"))
    spool = _spooled(tmp_path / "spool", row(3, cost=0.5, end_user="bo"))
    with database.connect() as connection:
        spent = users_spent_so_far(connection, spool, {DAY: ["alice"]}, T0 + 10, "bo")
    assert spent == {("alice", "bo", DAY): (PERIOD, 0.75)}
    assert users_spent_so_far(None, spool, {DAY: ["alice"]}, T0 + 10, "bo") == {
        ("alice", "bo", DAY): (PERIOD, 0.5)}


def test_a_spooled_row_that_names_no_end_user_counts_for_none(tmp_path: Path):
    spool = _spooled(tmp_path / "spool", row(1, cost=0.5))
    assert users_spent_so_far(None, spool, {DAY: ["alice"]}, T0 + 10) == {}


def test_one_end_user_read_alone_leaves_the_others_spooled_rows_out(tmp_path: Path):
    spool = _spooled(tmp_path / "spool", row(1, cost=0.5, end_user="bo"),
                     row(2, cost=1.0, end_user="ann"))
    assert users_spent_so_far(None, spool, {DAY: ["alice"]}, T0 + 10, "bo") == {
        ("alice", "bo", DAY): (PERIOD, 0.5)}


def test_an_end_user_s_spend_is_found_through_its_index_not_the_key_s_rows(tmp_path: Path):
    # Redis reads back each end user it has no state for: a scan of all the key's rows
    # of the period took 0.1 s at 300k of them, past the limits store's timeout soon after.
    database = open_database(None, tmp_path / "state")
    _stored(database, tmp_path, row(1, end_user="ann"))
    with database.connect() as connection:
        plan = " ".join(str(r[-1]) for r in connection.execute(
            "EXPLAIN QUERY PLAN " + ONE_USERS_COST, ("alice", "ann", T0)))
    assert "usage_ledger_key_user_started (key_name=? AND end_user=? AND started>?)" in plan
