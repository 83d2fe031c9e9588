"""Where a key's budget begins in this process: what it spent this period so far, read
from the usage ledger and its spool before the limiter first sees the key; where the
budget of each of its end users begins, for a key that gives them one; and where its
team's begins: what the team's rows cost this period, whichever keys it had."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path

import structlog

from hxgw.config import ClientKey, KeyLimits
from hxgw.keys.per_user import TEAM, named, team_name, user_name
from hxgw.lifecycle.aside import aside
from hxgw.store import Connection, Database, StoreError
from hxgw.usage.spend import spent_so_far, users_spent_so_far
from hxgw.usage.spool import Spool

log = structlog.get_logger("hxgw.lifecycle.seeds")

Unread = tuple[dict[int, set[str]], dict[int, set[str]], dict[int, set[str]]]
"""Keys whose spend this period is to be read: (those with a budget, those whose end
users have one, the teams with one), by the budget's period length."""
RELOAD_SEED_WAIT = 5.0
"""The longest a reload waits for the spend of the keys it adds: a store that does not
answer leaves them to begin from nothing rather than hold the reload up."""


class Seeds:
    """The spend this budget period of each key with a budget, where the limiter begins
    the key's budget when this process first sees it: read at the start for the keys
    known then, for a stored key read later (made since, or stored in a database that
    was away at the start) before it is let in (`hxgw.keys.book.Seed`), and for a key a
    reload's keys file adds before the reload takes effect (`read_new_keys`). A key's
    spend is read once per period length: the limiter counts from there."""

    def __init__(
        self, database: Database, spool_dir: Path, config_keys: Iterable[ClientKey]
    ) -> None:
        self.database = database
        self.spool = Spool(spool_dir, 0)  # read only: a file it cannot read is said once
        self.spent: dict[tuple[str, int], tuple[int, float]] = {}
        """The limiter's own (`hxgw.keys.window.Spent`): filled in place, from a thread."""
        self.pending = tuple(config_keys)
        """The config's keys, read with the first stored keys (the spool is read once)."""
        self._read: set[tuple[str, int]] = set()

    def __call__(self, connection: Connection | None, keys: Iterable[ClientKey]) -> None:
        pending, self.pending = self.pending, ()
        self._read_through(connection, self._unread((*pending, *keys)))

    def _read_through(self, connection: Connection | None, budgets: Unread) -> None:
        """The spend of the keys of `budgets` (`_unread`), of their end users and of their
        teams, read through `connection` (None: from the spool alone)."""
        keys, users, teams = budgets
        now = time.time()
        if keys:
            self.spent.update(spent_so_far(connection, self.spool, keys, now))
            self._read.update((n, period_s) for period_s, names in keys.items() for n in names)
        if users:
            spent = users_spent_so_far(connection, self.spool, users, now)
            self.spent.update(
                ((user_name(name, user), period_s), cost)
                for (name, user, period_s), cost in spent.items()
            )
            self._read.update(
                (user_name(n, ""), period_s) for period_s, names in users.items() for n in names
            )
        if teams:
            by_team = spent_so_far(connection, self.spool, teams, now, by="team")
            self.spent.update(((team_name(t), p), cost) for (t, p), cost in by_team.items())
            self._read.update(
                (team_name(team), period_s) for period_s, names in teams.items() for team in names
            )

    def _unread(self, keys: Iterable[ClientKey]) -> Unread:
        """The names of `keys` with a budget whose spend is not read, by period length;
        those whose end users have budgets not read; and their teams with one."""
        unread: Unread = ({}, {}, {})
        # Read is marked by name: a key's own, for its end users the key's name as their
        # names begin (no key and no end user has that one), a team's its limiter name.
        for key in keys:
            held: list[tuple[KeyLimits | None, str, dict[int, set[str]], str]] = [
                (key.limits, key.name, unread[0], key.name),
                (key.per_user, user_name(key.name, ""), unread[1], key.name),
            ]
            if key.team is not None:
                held.append((key.team.limits, team_name(key.team.name), unread[2], key.team.name))
            for limits, read_as, budgets, name in held:
                if limits is None or limits.budget is None:
                    continue
                if (read_as, limits.budget_period_s) not in self._read:
                    budgets.setdefault(limits.budget_period_s, set()).add(name)
        return unread

    def read_pending(self) -> None:
        """The config's keys, when no read of the stored keys took them along."""
        if self.pending:
            pending, self.pending = self.pending, ()
            self.read(pending)

    def read(self, keys: Iterable[ClientKey]) -> None:
        """The spend of those of `keys` not read yet: from the store, or, where it cannot
        be read, from the spool alone."""
        budgets = self._unread(keys)
        if budgets == ({}, {}, {}):
            return  # a reload that brings no new budget need not wait for the store
        try:
            with self.database.connect() as connection:
                self._read_through(connection, budgets)
        except StoreError as exc:
            log.warning(
                "cannot read this period's spend; budgets start from the spool's", error=str(exc)
            )
            self._read_through(None, budgets)


async def spend_now(seeds: Seeds, name: str, period_s: int) -> float | None:
    """What `name` spent this period, from the ledger and its spool, read now (aside): for
    a key whose limits Redis lost (or, named as `user_name` names it, for an end user of
    a key). None when the store cannot say."""
    key_name, user = named(name)

    def read() -> float:
        now, spool = time.time(), seeds.spool
        with seeds.database.connect() as connection:
            if name.startswith(TEAM):
                team = name.removeprefix(TEAM)
                by_team = spent_so_far(connection, spool, {period_s: {team}}, now, by="team")
                return by_team.get((team, period_s), (0, 0.0))[1]
            if user is None:
                spent = spent_so_far(connection, spool, {period_s: {name}}, now)
                return spent.get((name, period_s), (0, 0.0))[1]
            by_user = users_spent_so_far(connection, spool, {period_s: {key_name}}, now, user)
            return by_user.get((key_name, user, period_s), (0, 0.0))[1]

    try:
        return await aside(read)
    except StoreError as exc:
        log.warning("cannot read a key's spend for the limits store", key=name, error=str(exc))
        return None


async def read_new_keys(seeds: Seeds | None, keys: Iterable[ClientKey]) -> None:
    """Before a reload's keys serve: the spend of those this process has not read (a key
    the keys file brings back, or a budget period it changes), read aside."""
    if seeds is None:
        return
    try:
        await asyncio.wait_for(aside(seeds.read, tuple(keys)), RELOAD_SEED_WAIT)
    except TimeoutError:
        log.warning(
            "the store did not say this period's spend in time; the budgets of the keys "
            "this reload adds begin from what it says later, or from nothing",
            seconds=RELOAD_SEED_WAIT,
        )
    except Exception:  # the reload goes on: these budgets begin from nothing, as before
        log.exception("cannot read this period's spend of the keys this reload adds")
