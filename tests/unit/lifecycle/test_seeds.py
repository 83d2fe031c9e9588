"""Where the budgets of a key and of each of its end users begin in a process: what the
ledger says they spent this period."""

from __future__ import annotations

import time
from pathlib import Path

from hxgw.config import ClientKey, KeyLimits
from hxgw.keys.per_user import user_name
from hxgw.lifecycle.seeds import Seeds, spend_now
from hxgw.store import Database, open_database
from hxgw.usage import Ledger
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


async def test_an_end_user_s_spend_is_read_back_for_redis_by_its_limiter_name(tmp_path: Path):
    seeds = Seeds(_ledger_of_today(tmp_path), tmp_path / "spool", ())
    assert await spend_now(seeds, user_name("alice", "bo"), DAY) == 0.25
    assert await spend_now(seeds, "alice", DAY) == 1.75
