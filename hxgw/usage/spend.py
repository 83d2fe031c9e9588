"""What each key with a budget has spent in its current period, read back from the
ledger and from the rows its spool still holds: where a limiter's budget for the key
begins when the process first sees it, and what `hxgw keys list` shows. The same for
each end user of a key whose end users have budgets of their own (`users_spent_so_far`).

Periods are whole multiples of their length since the epoch, as the limiters count
them. `Budgets` maps a period's length in seconds to the names of the keys with it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Literal

from hxgw.store import Connection
from hxgw.usage.report import ledger_exists, summed_cost
from hxgw.usage.row import COLUMNS, Values
from hxgw.usage.schema import TABLE
from hxgw.usage.spool import Spool

Budgets = Mapping[int, Collection[str]]
Spent = dict[tuple[str, int], tuple[int, float]]
"""(key name, period length) -> (period index, cost in it): `hxgw.keys.window.Spent`."""
Owner = Literal["key_name", "team"]
"""Whose spend: the column of the ledger that names them."""
UserSpent = dict[tuple[str, str, int], tuple[int, float]]
"""(key name, end user, period length) -> (period index, the end user's cost in it)."""

_KEY, _COST, _STARTED, _ID, _USER = (
    COLUMNS.index(c) for c in ("key_name", "cost", "started", "request_id", "end_user")
)
_CHUNK = 200
"""Spool rows looked for in the store per query."""


def spent_so_far(
    connection: Connection | None,
    spool: Spool,
    budgets: Budgets,
    now: float,
    by: Owner = "key_name",
) -> Spent:
    """The spool's rows the store does not hold yet, then the store's (none without a
    `connection`), read in that order. A row the ledger replays from one to the other
    meanwhile is counted twice (for the moment between the two queries) rather than
    missed: for a budget, the safe side. A replayed file not yet deleted counts once, and
    a row spooled twice (a write that failed midway, spooled again) once. `by`: whose
    spend, a key's (the names of `budgets` are keys') or a team's (they are teams')."""
    column = COLUMNS.index(by)
    waiting = _waiting(spool, budgets, now, column)
    if connection is None or not ledger_exists(connection):
        return _summed(waiting, budgets, now, column)
    spent = _summed(_not_stored(connection, waiting), budgets, now, column)
    for key_period, (period, cost) in spent_this_period(connection, budgets, now, by).items():
        spent[key_period] = (period, cost + spent.get(key_period, (period, 0.0))[1])
    return spent


def users_spent_so_far(
    connection: Connection | None,
    spool: Spool,
    budgets: Budgets,
    now: float,
    end_user: str | None = None,
) -> UserSpent:
    """`spent_so_far` for each end user of the keys of `budgets` (by the period of their
    end users' budgets), or for `end_user` alone."""
    waiting = [
        row
        for row in _waiting(spool, budgets, now)
        if row[_USER] is not None and end_user in (None, row[_USER])
    ]
    # The store, asked once whether it holds a ledger: None when it holds none.
    stored = connection if connection is not None and ledger_exists(connection) else None
    if stored is not None:
        waiting = _not_stored(stored, waiting)
    periods, spent = _periods(budgets), UserSpent()
    for row in waiting:
        period_s = periods[row[_KEY]]
        _, cost = spent.get((row[_KEY], row[_USER], period_s), (0, 0.0))
        spent[row[_KEY], row[_USER], period_s] = (int(now // period_s), cost + row[_COST])
    if stored is None:
        return spent
    for period_s, names in budgets.items():
        period = int(now // period_s)
        for name in names:
            for user, cost in _users_costs(stored, name, period * period_s, end_user):
                _, before = spent.get((name, user, period_s), (period, 0.0))
                spent[name, user, period_s] = (period, summed_cost(before + cost))
    return spent


def _users_costs(
    connection: Connection, name: str, since: float, end_user: str | None
) -> list[tuple[str, float]]:
    """What each end user of the key `name` (or `end_user` alone) spent since `since`, in
    the store."""
    if end_user is None:
        rows = connection.execute(USERS_COSTS, (name, since))
    else:
        rows = connection.execute(ONE_USERS_COST, (name, end_user, since))
    return [(str(user), float(cost)) for user, cost in rows if cost]


# One end user's found through the (key_name, end_user, started) index of the rows that
# name one; all of a key's through either index, each row of the period read anyway.
USERS_COSTS = (
    f"SELECT end_user, SUM(cost) FROM {TABLE} "  # noqa: S608 -- constants and ?s
    "WHERE key_name = ? AND end_user IS NOT NULL AND started >= ? GROUP BY end_user"
)
ONE_USERS_COST = (
    f"SELECT end_user, SUM(cost) FROM {TABLE} "  # noqa: S608 -- constants and ?s
    "WHERE key_name = ? AND end_user = ? AND started >= ? GROUP BY end_user"
)


def _waiting(spool: Spool, budgets: Budgets, now: float, column: int = _KEY) -> list[Values]:
    """The spool's rows that cost a key of `budgets` (or whoever `column` names)
    something this period, each once."""
    waiting = _this_period(spool.rows(), budgets, now, column)
    return list({(row[_STARTED], row[_ID]): row for row in waiting}.values())


def _periods(budgets: Budgets) -> dict[str, int]:
    return {name: period_s for period_s, names in budgets.items() for name in names}


def _this_period(
    rows: Iterable[Values], budgets: Budgets, now: float, column: int = _KEY
) -> list[Values]:
    """The rows that cost a key of `budgets` (or whoever `column` names) something in
    its current period."""
    periods = _periods(budgets)
    return [
        row
        for row in rows
        if (period_s := periods.get(row[column])) is not None
        and row[_STARTED] >= now // period_s * period_s
        and row[_COST]
    ]


def _summed(rows: list[Values], budgets: Budgets, now: float, column: int = _KEY) -> Spent:
    periods = _periods(budgets)
    spent: Spent = {}
    for row in rows:
        period_s = periods[row[column]]
        _, cost = spent.get((row[column], period_s), (0, 0.0))
        spent[row[column], period_s] = (int(now // period_s), cost + row[_COST])
    return spent


def _not_stored(connection: Connection, rows: list[Values]) -> list[Values]:
    """`rows` but those the store holds, each found by its primary key."""
    stored: set[tuple[float, str]] = set()
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        pairs = ", ".join(["(?, ?)"] * len(chunk))
        found = connection.execute(
            f"SELECT started, request_id FROM {TABLE} "  # noqa: S608 -- constants and ?s
            f"WHERE (started, request_id) IN (VALUES {pairs})",
            [value for row in chunk for value in (row[_STARTED], row[_ID])],
        )
        stored.update((float(started), rid) for started, rid in found)
    return [row for row in rows if (row[_STARTED], row[_ID]) not in stored]


def spent_this_period(
    connection: Connection, budgets: Budgets, now: float, by: Owner = "key_name"
) -> Spent:
    """The cost so far in the current period of each key of `budgets` (or team, `by`),
    in the store. Each key's rows are found through the (key_name, started) index (a
    team's through (team, started)). The sum is rounded
    past its float noise, as `hxgw usage` rounds it: ten rows of 0.0095 are 0.095, and
    `hxgw keys list` said 0.09 spent where the usage report said 0.10."""
    spent: Spent = {}
    for period_s, names in budgets.items():
        period = int(now // period_s)
        for name in names:
            ((cost,),) = connection.execute(
                f"SELECT SUM(cost) FROM {TABLE} WHERE {by} = ? AND started >= ?",  # noqa: S608
                (name, period * period_s),
            )
            if cost:
                spent[name, period_s] = (period, summed_cost(cost))
    return spent
