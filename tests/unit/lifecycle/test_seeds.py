"""Where the budgets of a key and of each of its end users begin in a process: what the
ledger says they spent this period."""

from __future__ import annotations

import time
from pathlib import Path

from structlog.testing import capture_logs

from hxgw.config import ClientKey, KeyLimits, Team
from hxgw.keys.per_user import team_name, user_name
from hxgw.lifecycle.seeds import Seeds, spend_now
from hxgw.store import Database, open_database
from hxgw.store.sqlite import SqliteDatabase
from hxgw.usage import Ledger
from hxgw.usage.spool import Spool
from tests.unit.usage.rows import row

DAY = 86_400


def _ledger_of_today(tmp_path: Path) -> Database:
    database = open_database(None, tmp_path / "state")
    ledger = Ledger(database, tmp_path / "spool")
    now = time.time()
    for n, (cost, end_user) in enumerate([(1.0, "ann"), (0.5, None), (0.25, "bo")]):
        ledger.record(row(n, cost=cost, end_user=end_user, started=now - n))
    ledger.close()
    return database


def test_a_key_s_end_users_begin_where_the_ledger_left_each(tmp_path: Path):
    seeds = Seeds(_ledger_of_today(tmp_path), tmp_path / "spool", ())
    key = ClientKey(name="alice", digest=bytes(32), per_user=KeyLimits(budget=5.0))
    seeds.read([key])
    period = int(time.time() // DAY)
    assert seeds.spent == {(user_name("alice", "ann"), DAY): (period, 1.0),
                           (user_name("alice", "bo"), DAY): (period, 0.25)}


def test_a_key_s_own_budget_added_after_its_end_users_were_read_begins_at_the_ledger_s(
    tmp_path: Path,
):
    seeds = Seeds(_ledger_of_today(tmp_path), tmp_path / "spool", ())
    users = KeyLimits(budget=5.0)
    seeds.read([ClientKey(name="alice", digest=bytes(32), per_user=users)])
    seeds.read([ClientKey(name="alice", digest=bytes(32), limits=users, per_user=users)])
    assert seeds.spent[("alice", DAY)] == (int(time.time() // DAY), 1.75)


def test_end_users_given_budgets_after_their_key_s_was_read_begin_where_the_ledger_left_each(
    tmp_path: Path,
):
    seeds = Seeds(_ledger_of_today(tmp_path), tmp_path / "spool", ())
    own = KeyLimits(budget=5.0)
    seeds.read([ClientKey(name="alice", digest=bytes(32), limits=own)])
    seeds.read([ClientKey(name="alice", digest=bytes(32), limits=own, per_user=own)])
    assert seeds.spent[(user_name("alice", "bo"), DAY)] == (int(time.time() // DAY), 0.25)


def test_keys_without_a_budget_are_read_without_asking_the_store(tmp_path: Path):
    # A reload that brings no new budget need not wait for a store that is away.
    away = SqliteDatabase(tmp_path / "none.sqlite3", create=False)
    seeds = Seeds(away, tmp_path / "spool", ())
    with capture_logs() as logs:
        seeds.read([ClientKey(name="alice", digest=bytes(32), per_user=KeyLimits(rpm=5))])
    assert logs == []


async def test_an_end_user_s_spend_is_read_back_for_redis_by_its_limiter_name(tmp_path: Path):
    seeds = Seeds(_ledger_of_today(tmp_path), tmp_path / "spool", ())
    assert await spend_now(seeds, user_name("alice", "bo"), DAY) == 0.25
    assert await spend_now(seeds, "alice", DAY) == 1.75


def _ledger_of_a_team(tmp_path: Path) -> Database:
    database = open_database(None, tmp_path / "state")
    ledger = Ledger(database, tmp_path / "spool")
    now = time.time()
    rows = [("a", "search", 1.0), ("b", "search", 0.5), ("b", None, 0.25), ("c", "other", 4.0)]
    for n, (key, team, cost) in enumerate(rows):
        ledger.record(row(n, key_name=key, team=team, cost=cost, started=now - n))
    ledger.close()
    return database


def _in_team(name: str, team: Team) -> ClientKey:
    return ClientKey(name=name, digest=name.encode().ljust(32, b"-"), team=team)


def test_a_team_s_budget_begins_at_what_its_rows_cost_this_period(tmp_path: Path):
    # b's 0.25 was spent before it joined the team: it is b's, not the team's.
    team = Team(name="search", limits=KeyLimits(budget=10.0))
    seeds = Seeds(_ledger_of_a_team(tmp_path), tmp_path / "spool", ())
    seeds.read([_in_team("a", team), _in_team("b", team), ClientKey(name="c", digest=bytes(32))])
    assert seeds.spent == {(team_name("search"), DAY): (int(time.time() // DAY), 1.5)}


def test_a_team_without_a_budget_reads_nothing(tmp_path: Path):
    team = Team(name="search", limits=KeyLimits(rpm=100))
    seeds = Seeds(_ledger_of_a_team(tmp_path), tmp_path / "spool", ())
    seeds.read([_in_team("a", team)])
    assert seeds.spent == {}


async def test_a_team_s_spend_is_read_back_for_redis_by_its_limiter_name(tmp_path: Path):
    seeds = Seeds(_ledger_of_a_team(tmp_path), tmp_path / "spool", ())
    assert await spend_now(seeds, team_name("search"), 7 * DAY) == 1.5
    assert await spend_now(seeds, team_name("other"), DAY) == 4.0


def test_a_team_s_budget_counts_its_rows_still_in_the_spool(tmp_path: Path):
    # c joined the team lately: its row is the team's, though c has no budget of its own.
    database = _ledger_of_a_team(tmp_path)
    spool = Spool(tmp_path / "spool", 1 << 20)  # a row the ledger could not write yet
    spool.add([row(9, key_name="c", team="search", cost=2.0, started=time.time()).values()])
    spool.close()
    team = Team(name="search", limits=KeyLimits(budget=10.0))
    seeds = Seeds(database, tmp_path / "spool", ())
    seeds.read([_in_team("a", team)])
    assert seeds.spent == {(team_name("search"), DAY): (int(time.time() // DAY), 3.5)}


def test_a_team_s_spend_once_read_is_not_asked_of_the_store_again(tmp_path: Path):
    team = Team(name="search", limits=KeyLimits(budget=10.0))
    seeds = Seeds(_ledger_of_a_team(tmp_path), tmp_path / "spool", ())
    seeds.read([_in_team("a", team)])
    seeds.database = SqliteDatabase(tmp_path / "none.sqlite3", create=False)  # now away
    with capture_logs() as logs:
        seeds.read([_in_team("a", team), _in_team("b", team)])
    assert logs == []


async def test_a_key_whose_name_begins_with_team_is_read_back_as_a_key_s_spend(
    tmp_path: Path,
):
    database = open_database(None, tmp_path / "state")
    ledger = Ledger(database, tmp_path / "spool")
    ledger.record(row(0, key_name="team-search", cost=0.75, started=time.time()))
    ledger.record(row(1, key_name="a", team="search", cost=2.0, started=time.time()))
    ledger.close()
    seeds = Seeds(database, tmp_path / "spool", ())
    assert await spend_now(seeds, "team-search", DAY) == 0.75
