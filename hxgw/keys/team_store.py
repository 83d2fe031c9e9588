"""Teams kept in the gateway's database beside the keys, made by `hxgw teams`: a team
has a name, the limits a key may have and the groups a key may name, and each key
`hxgw keys --team` puts in it is held to those limits, counted over all its keys, and
kept to those groups. Serving gateways see a change within a second, as they see a
key's: the key table's marker counts the teams too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from hxgw.config import KeyLimits, Team
from hxgw.errors import did_you_mean
from hxgw.keys.store import KeyStore, KeyStoreError, read_live, settings_columns
from hxgw.keys.stored_key import TABLE, TEAMS, limits_of
from hxgw.store import Connection


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredTeam:
    """One row of the teams table."""

    name: str
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    budget: float | None
    budget_period: str
    created: float
    updated: float
    groups: tuple[str, ...] | None

    def limits(self) -> KeyLimits | None:
        return limits_of(self.rpm, self.tpm, self.max_parallel, self.budget, self.budget_period)

    def team(self) -> Team | None:
        """The team its keys are held to; None while it neither limits nor keeps to
        groups."""
        limits, groups = self.limits(), self.groups
        if limits is None and groups is None:
            return None
        return Team(
            name=self.name,
            limits=limits or KeyLimits(),
            groups=None if groups is None else frozenset(groups),
        )


_FIELDS = tuple(field.name for field in fields(StoredTeam))


class TeamStore:
    """The teams table's reads and writes, through a key store's connections."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def all(self, connection: Connection) -> list[StoredTeam]:
        rows = connection.execute(
            f"SELECT {', '.join(_FIELDS)} FROM {TEAMS} ORDER BY name"  # noqa: S608
        )
        return [_read(row) for row in rows]

    def get(self, connection: Connection, name: str) -> StoredTeam | None:
        rows = connection.execute(
            f"SELECT {', '.join(_FIELDS)} FROM {TEAMS} WHERE name = ?",  # noqa: S608
            (name,),
        )
        return _read(rows[0]) if rows else None

    def members(self, connection: Connection, name: str) -> list[str]:
        """The live keys in the team `name`."""
        rows = connection.execute(
            f"SELECT name FROM {TABLE} WHERE team = ? AND revoked IS NULL ORDER BY name",  # noqa: S608
            (name,),
        )
        return [row[0] for row in rows]

    def create(self, connection: Connection, name: str, settings: dict[str, Any]) -> StoredTeam:
        now = time.time()
        with connection.transaction(exclusive=True):
            if self.get(connection, name) is not None:
                raise KeyStoreError(f"a team named {name!r} exists (update or delete it)")
            columns = {
                "name": name,
                "budget_period": "1d",
                **settings_columns(settings),
                "created": now,
                "updated": self.keys.stamp(connection, now),
            }
            marks = ", ".join("?" for _ in columns)
            connection.execute(
                f"INSERT INTO {TEAMS} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
                tuple(columns.values()),
            )
            made = self.get(connection, name)
        assert made is not None
        return made

    def update(self, connection: Connection, name: str, settings: dict[str, Any]) -> StoredTeam:
        changes = settings_columns(settings)
        if not changes:
            raise KeyStoreError("nothing to change: give at least one option")
        with connection.transaction(exclusive=True):
            self._existing(connection, name)
            changes["updated"] = self.keys.stamp(connection, time.time())
            sets = ", ".join(f"{column} = ?" for column in changes)
            connection.execute(
                f"UPDATE {TEAMS} SET {sets} WHERE name = ?",  # noqa: S608
                (*changes.values(), name),
            )
            changed = self.get(connection, name)
        assert changed is not None
        return changed

    def delete(self, connection: Connection, name: str) -> StoredTeam:
        """Remove the team `name`, which must have no live key: its keys' requests would
        lose the limits the operator gave them all together without a word."""
        with connection.transaction(exclusive=True):
            team = self._existing(connection, name)
            if members := self.members(connection, name):
                raise KeyStoreError(
                    f"the team {name!r} has keys ({', '.join(members)}): move them out first"
                    f" (hxgw keys update {members[0]} --team none)"
                )
            connection.execute(f"DELETE FROM {TEAMS} WHERE name = ?", (name,))  # noqa: S608
        return team

    def _existing(self, connection: Connection, name: str) -> StoredTeam:
        team = self.get(connection, name)
        if team is None:
            known = [t.name for t in self.all(connection)]
            hint = did_you_mean(name, known) or " (hxgw teams list shows them)"
            raise KeyStoreError(f"no team named {name!r}{hint}")
        return team


def team_groups(config_dir: str, env: Mapping[str, str]) -> dict[str, tuple[str, ...] | None]:
    """The groups each stored team keeps its keys to, in the store the gateway of
    `config_dir` would open; none where there is none, or none readable from here
    (`live_names` says why)."""
    return read_live(
        config_dir,
        env,
        lambda store, connection: {t.name: t.groups for t in TeamStore(store).all(connection)},
    )


def _read(row: Sequence[Any]) -> StoredTeam:
    values = dict(zip(_FIELDS, row, strict=True))
    values["groups"] = tuple(values["groups"].split(",")) if values["groups"] else None
    return StoredTeam(**values)
