"""One key `hxgw keys` made, as its table holds it: the row, its schema and its
migrations, and the client keys the gateway checks a presented secret against."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from hxgw.config import ClientKey, KeyLimits, Team
from hxgw.config.schema import PERIODS
from hxgw.store import Migration

TABLE = "client_keys"
TEAMS = "client_teams"
MIGRATIONS = (
    Migration(
        component="keys",
        version=1,
        description="client keys, held as SHA-256 digests",
        statements=(
            f"CREATE TABLE {TABLE} ("
            " name TEXT PRIMARY KEY,"
            " digest TEXT NOT NULL UNIQUE,"
            " previous_digest TEXT,"
            " previous_until DOUBLE PRECISION,"
            " groups TEXT,"
            " rpm BIGINT, tpm BIGINT, max_parallel BIGINT,"
            " budget DOUBLE PRECISION, budget_period TEXT NOT NULL DEFAULT '1d',"
            " expires DOUBLE PRECISION,"
            " revoked DOUBLE PRECISION,"
            " created DOUBLE PRECISION NOT NULL,"
            " updated DOUBLE PRECISION NOT NULL)",
        ),
    ),
    Migration(
        component="keys",
        version=2,
        description="the digests of revoked keys whose name a new key took",
        statements=(f"ALTER TABLE {TABLE} ADD COLUMN revoked_digests TEXT",),
    ),
    Migration(
        component="keys",
        version=3,
        description="the limits each end user of a key gets",
        statements=tuple(
            f"ALTER TABLE {TABLE} ADD COLUMN {column}"
            for column in (
                "user_rpm BIGINT",
                "user_tpm BIGINT",
                "user_max_parallel BIGINT",
                "user_budget DOUBLE PRECISION",
                "user_budget_period TEXT NOT NULL DEFAULT '1d'",
            )
        ),
    ),
    Migration(
        component="keys",
        version=4,
        description="teams: keys that share limits",
        statements=(
            f"CREATE TABLE {TEAMS} ("
            " name TEXT PRIMARY KEY,"
            " rpm BIGINT, tpm BIGINT, max_parallel BIGINT,"
            " budget DOUBLE PRECISION, budget_period TEXT NOT NULL DEFAULT '1d',"
            " created DOUBLE PRECISION NOT NULL,"
            " updated DOUBLE PRECISION NOT NULL)",
            f"ALTER TABLE {TABLE} ADD COLUMN team TEXT",
        ),
    ),
    Migration(
        component="keys",
        version=5,
        description="the groups a team keeps its keys to",
        statements=(f"ALTER TABLE {TEAMS} ADD COLUMN groups TEXT",),
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredKey:
    """One row of the table, as `hxgw keys list` shows it: never a secret."""

    name: str
    digest: str
    previous_digest: str | None
    previous_until: float | None
    groups: tuple[str, ...] | None
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    budget: float | None
    budget_period: str
    expires: float | None
    revoked: float | None
    created: float
    updated: float
    revoked_digests: tuple[str, ...] = ()
    """The secrets of earlier keys of this name, revoked: still refused as revoked."""
    user_rpm: int | None = None
    """The limits each end user of the key gets (`user_*`): as the key's own."""
    user_tpm: int | None = None
    user_max_parallel: int | None = None
    user_budget: float | None = None
    user_budget_period: str = "1d"
    team: str | None = None
    """The team the key is in: one `hxgw teams` made, or one of the keys file's."""

    def digests(self) -> tuple[str, ...]:
        """Every secret this name has had that a holder may still present."""
        return (*self.revoked_digests, self.digest, *filter(None, [self.previous_digest]))

    def limits(self) -> KeyLimits | None:
        return limits_of(self.rpm, self.tpm, self.max_parallel, self.budget, self.budget_period)

    def per_user(self) -> KeyLimits | None:
        return limits_of(
            self.user_rpm,
            self.user_tpm,
            self.user_max_parallel,
            self.user_budget,
            self.user_budget_period,
        )

    def client_keys(
        self, per_user: KeyLimits | None = None, team: Team | None = None
    ) -> list[ClientKey]:
        """What the gateway checks a presented key against: this key and the one it was
        rotated from, which expires with its grace (and is then refused as one that
        ended, not counted as a bad key). None (an empty list) once revoked. `per_user`:
        what each end user gets where the key gives them no limits of its own; `team`:
        the team its `team` names."""
        if self.revoked is not None:
            return []
        groups = frozenset(self.groups) if self.groups is not None else None
        common: dict[str, Any] = {
            "name": self.name,
            "groups": groups,
            "limits": self.limits(),
            "per_user": self.per_user() or per_user,
            "team": team,
        }
        keys = [ClientKey(digest=bytes.fromhex(self.digest), expires=self.expires, **common)]
        if self.previous_digest and self.previous_until:
            until = min(self.previous_until, self.expires or self.previous_until)
            keys.append(
                ClientKey(digest=bytes.fromhex(self.previous_digest), expires=until, **common)
            )
        return keys


def limits_of(
    rpm: int | None, tpm: int | None, parallel: int | None, budget: float | None, period: str
) -> KeyLimits | None:
    if (rpm, tpm, parallel, budget) == (None, None, None, None):
        return None
    return KeyLimits(
        rpm=rpm, tpm=tpm, max_parallel=parallel, budget=budget, budget_period_s=PERIODS[period]
    )


FIELDS = tuple(field.name for field in fields(StoredKey))
"""The table's columns, in the order of StoredKey's fields."""


def read_row(row: Sequence[Any]) -> StoredKey:
    values = dict(zip(FIELDS, row, strict=True))
    groups = values["groups"]
    values["groups"] = tuple(groups.split(",")) if groups else None
    revoked = values["revoked_digests"]
    values["revoked_digests"] = tuple(revoked.split(",")) if revoked else ()
    return StoredKey(**values)
