"""What each key with a budget has spent in its current period, read back from the
ledger and from the rows its spool still holds: where a limiter's budget for the key
begins when the process first sees it, and what `hxgw keys list` shows.

Periods are whole multiples of their length since the epoch, as the limiters count
them. `Budgets` maps a period's length in seconds to the names of the keys with it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from hxgw.store import Connection
from hxgw.usage.report import ledger_exists
from hxgw.usage.row import COLUMNS, Values
from hxgw.usage.schema import TABLE
from hxgw.usage.spool import Spool

Budgets = Mapping[int, Collection[str]]
Spent = dict[tuple[str, int], tuple[int, float]]
"""(key name, period length) -> (period index, cost in it): `hxgw.keys.window.Spent`."""

_KEY, _COST, _STARTED = (COLUMNS.index(c) for c in ("key_name", "cost", "started"))


def spent_so_far(
    connection: Connection | None, spool_dir: Path, budgets: Budgets, now: float
) -> Spent:
    """The spool's rows and then the store's (none without a `connection`). A row the
    ledger replays from one to the other between the two reads is counted twice, never
    missed: for a budget, the safe side."""
    spent = spent_in_rows(Spool(spool_dir, 0).rows(), budgets, now)
    if connection is None or not ledger_exists(connection):
        return spent
    for key_period, (period, cost) in spent_this_period(connection, budgets, now).items():
        spent[key_period] = (period, cost + spent.get(key_period, (period, 0.0))[1])
    return spent


def spent_in_rows(rows: Iterable[Values], budgets: Budgets, now: float) -> Spent:
    """`spent_this_period` of rows not in the store yet (the spool's)."""
    periods = {name: period_s for period_s, names in budgets.items() for name in names}
    spent: Spent = {}
    for row in rows:
        period_s = periods.get(row[_KEY])
        if period_s is None or row[_STARTED] < now // period_s * period_s or not row[_COST]:
            continue
        _, cost = spent.get((row[_KEY], period_s), (0, 0.0))
        spent[row[_KEY], period_s] = (int(now // period_s), cost + row[_COST])
    return spent


def spent_this_period(connection: Connection, budgets: Budgets, now: float) -> Spent:
    """The cost so far in the current period of each key of `budgets`, in the store.
    Each key's rows are found through the (key_name, started) index."""
    spent: Spent = {}
    for period_s, names in budgets.items():
        period = int(now // period_s)
        for name in names:
            ((cost,),) = connection.execute(
                f"SELECT SUM(cost) FROM {TABLE} WHERE key_name = ? AND started >= ?",  # noqa: S608
                (name, period * period_s),
            )
            if cost:
                spent[name, period_s] = (period, float(cost))
    return spent
