"""Versioned schema migrations: a `schema_version` table and an ordered list of steps.

Each step runs in one exclusive transaction together with the version it brings the
schema to, so a step is applied once and whole, even when several workers or several
instances start at the same moment. Steps are only ever appended: a released step is
never edited, its successor changes what it did.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from hxgw.store.database import Connection, Database

_CREATE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " component TEXT NOT NULL,"
    " version INTEGER NOT NULL,"
    " applied DOUBLE PRECISION NOT NULL,"
    " description TEXT NOT NULL,"
    " PRIMARY KEY (component, version))"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    """One step of a component's schema (`usage`, later `keys`), numbered from 1.

    The statements are plain SQL that both SQLite and PostgreSQL accept."""

    component: str
    version: int
    description: str
    statements: tuple[str, ...]


def schema_version(connection: Connection, component: str) -> int:
    """The newest version applied for `component`; 0 on a new store."""
    connection.execute(_CREATE)
    rows = connection.execute(
        "SELECT MAX(version) FROM schema_version WHERE component = ?", (component,)
    )
    return int(rows[0][0] or 0)


def migrate(connection: Connection, steps: Sequence[Migration], *, upto: int | None = None) -> int:
    """Apply the steps newer than the store's version (up to `upto`); return the version."""
    components = {step.component for step in steps}
    if len(components) > 1:
        raise ValueError(f"one component per list of steps, got {sorted(components)}")
    if [step.version for step in steps] != list(range(1, len(steps) + 1)):
        raise ValueError("steps must be numbered 1, 2, 3, ... in order")
    if not steps:
        return 0
    component = steps[0].component
    current = 0
    for step in steps[: upto if upto is not None else len(steps)]:
        with connection.transaction(exclusive=True):
            current = schema_version(connection, component)
            if step.version <= current:
                continue
            for statement in step.statements:
                connection.execute(statement)
            connection.execute(
                "INSERT INTO schema_version (component, version, applied, description)"
                " VALUES (?, ?, ?, ?)",
                (component, step.version, time.time(), step.description),
            )
            current = step.version
    # A newer schema (a newer hxgw ran, then this one again) is left as it is: steps only
    # add, so what this version knows is still there.
    return current


def migrate_database(database: Database, steps: Sequence[Migration]) -> int:
    """Apply the steps newer than the store's schema version; return the version now."""
    with database.connect() as connection:
        return migrate(connection, steps)
