"""Reading the ledger back: totals per key, model, day, end user or team over a time
window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, SupportsFloat

from hxgw.store import Connection, Dialect
from hxgw.usage.schema import A_REQUEST, FAILED, TABLE

Grouping = Literal["key", "model", "day", "user", "team"]
GROUPINGS: tuple[Grouping, ...] = ("key", "model", "day", "user", "team")

NO_MODEL_SQL = "COALESCE(model, '(no model)')"
"""The model column with a name for the requests no model served."""

_GROUP: dict[Grouping, dict[Dialect, str]] = {
    "key": {"sqlite": "key_name", "postgresql": "key_name"},
    # A request no model served (a model list, one refused before routing) is "(no model)".
    "model": {"sqlite": NO_MODEL_SQL, "postgresql": NO_MODEL_SQL},
    # A request that named none is null: no name a client may give its end user stands
    # for it ("(no user)" did, and a client's "(no user)" was added to those).
    "user": {"sqlite": "end_user", "postgresql": "end_user"},
    # A key in no team: null too.
    "team": {"sqlite": "team", "postgresql": "team"},
    # Days are UTC days, the same on every machine that reads the ledger.
    "day": {
        "sqlite": "strftime('%Y-%m-%d', started, 'unixepoch')",
        "postgresql": "to_char(to_timestamp(started) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    },
}
# The latency of a request a model answered: one refused at once would pull the median
# down, a batch's row (made to ended) push it up. SQLite's median() is the aggregate
# hxgw.store.sqlite adds to every connection; both skip nulls.
_SERVED = f"CASE WHEN model IS NOT NULL AND {A_REQUEST} THEN ended - started END"
REQUESTS = f"SUM(CASE WHEN {A_REQUEST} THEN 1 ELSE 0 END)"
"""How many rows are requests': a row billed apart (a batch's) counts its tokens only."""
_P50: dict[Dialect, str] = {
    "sqlite": f"median({_SERVED})",
    "postgresql": f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {_SERVED})",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Totals:
    """One line of a report. `errors` counts statuses of 400 and above and streams the
    upstream broke off; `p50_latency` is the median seconds from start to end of the
    requests a model answered, to the millisecond (the clock's last digits are noise), and `cost` is rounded past the float sum's noise (0.1 + 0.2 is 0.3 here)."""

    group: str | None
    """What the line totals: a key, a model, a day, an end user or a team (None: those of
    the requests that named no end user, or whose key was in no team)."""
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float
    errors: int
    failovers: int
    p50_latency: float | None
    # The parts of the tokens above (of the prompt, of the completion) the upstream
    # reported: last, so that a CSV read by position finds the columns it read before.
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


def summed_cost(total: SupportsFloat) -> float:
    """A sum of costs from the store past its float noise (0.22999999999999998): every
    view of the ledger (`hxgw usage`, a key's spend, the status page) says one figure."""
    return round(float(total), 9)


def ledger_exists(connection: Connection) -> bool:
    """Whether a gateway has created the ledger in this store (a reader creates nothing)."""
    if connection.dialect == "sqlite":
        sql = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:
        sql = "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?"
    return bool(connection.execute(sql, (TABLE,))[0][0])


def ledger_version(connection: Connection) -> int:
    """The schema version of a ledger that exists (`hxgw.store.migrate.schema_version` without
    creating its table: a reader writes nothing)."""
    sql = "SELECT MAX(version) FROM schema_version WHERE component = 'usage'"
    return int(connection.execute(sql)[0][0] or 0)


def totals(
    connection: Connection,
    *,
    since: float,
    by: Grouping,
    key: str | None = None,
    user: str | None = None,
    team: str | None = None,
    until: float | None = None,
    top: int | None = None,
) -> list[Totals]:
    """Totals of the requests started at or after `since` and before `until` (Unix
    seconds; None: now), one per group, ordered by group; only key `key`'s, end user
    `user`'s and team `team`'s, when given; only the `top` that cost most, dearest first (then those
    with most requests, then by group), when given."""
    group = _GROUP[by][connection.dialect]
    where = "started >= ?"
    params: list[object] = [since]
    if until is not None:
        where += " AND started < ?"
        params.append(until)
    if key is not None:
        where += " AND key_name = ?"
        params.append(key)
    if user is not None:
        where += " AND end_user = ?"
        params.append(user)
    if team is not None:
        where += " AND team = ?"
        params.append(team)
    # Only constants are pasted in; the key, the user and the window are parameters. The
    # requests that named no end user come first, in either store (PostgreSQL puts nulls
    # last, and takes no output column's name in an expression; NULLS FIRST is SQLite 3.30).
    sql = (
        f"SELECT {group} AS grp, {REQUESTS}, SUM(prompt_tokens), SUM(completion_tokens),"  # noqa: S608
        f" SUM(total_tokens), SUM(cost), SUM(CASE WHEN {FAILED} THEN 1 ELSE 0 END),"
        f" SUM(failovers), {_P50[connection.dialect]},"
        " SUM(cached_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens)"
        f" FROM {TABLE} WHERE {where} GROUP BY grp ORDER BY "
    )
    if top is not None:
        sql += f"SUM(cost) DESC, {REQUESTS} DESC, "
    sql += f"{group} IS NOT NULL, grp"
    if top is not None:
        sql += " LIMIT ?"
        params.append(top)
    return [
        Totals(
            group=None if row[0] is None else str(row[0]),
            requests=int(row[1]),
            prompt_tokens=int(row[2]),
            completion_tokens=int(row[3]),
            total_tokens=int(row[4]),
            cost=summed_cost(row[5]),
            errors=int(row[6]),
            failovers=int(row[7]),
            p50_latency=None if row[8] is None else round(float(row[8]), 3),
            cached_tokens=int(row[9]),
            cache_write_tokens=int(row[10]),
            reasoning_tokens=int(row[11]),
        )
        for row in connection.execute(sql, params)
    ]
