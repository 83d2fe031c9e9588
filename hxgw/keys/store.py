"""Client keys kept in the gateway's database (hxgw.store), made by `hxgw keys`.

Only a key's SHA-256 digest is stored; its secret is printed once, when it is
made or rotated. A rotated key's old digest keeps working until the grace
period the operator chose. A revoked key stays in the table (a record of who
had access) but no longer opens anything; its name may be given to a new key, and its
secrets are then still refused as revoked.

The serving gateway reads the table again whenever it changed (`marker()`, a
cheap count and newest change time, is asked once a second), so created,
changed and revoked keys take effect within a second on every worker and
every instance that shares the database, without a reload.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from hxgw.config import key_digest, load_store_settings
from hxgw.errors import ConfigError, did_you_mean
from hxgw.keys.stored_key import FIELDS, MIGRATIONS, TABLE, TEAMS, StoredKey, read_row
from hxgw.store import (
    SQLITE_FILE,
    Connection,
    Database,
    StoreError,
    migrate_database,
    open_database,
)

SECRET_PREFIX = "sk-hx-"  # noqa: S105 -- a prefix, not a secret


class KeyStoreError(Exception):
    """A `hxgw keys` request that cannot be done: the message says why."""


def new_secret() -> tuple[str, str]:
    """A new key and its digest (hex)."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    return secret, key_digest(secret).hex()


class KeyStore:
    """The table's reads and writes; blocking calls (the gateway runs them in a thread)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._migrated = False

    def connect(self) -> Connection:
        """A connection to the store, whose table is made or brought up to date first."""
        if not self._migrated:
            migrate_database(self.database, MIGRATIONS)
            self._migrated = True
        return self.database.connect()

    def marker(self, connection: Connection) -> tuple[int, int, float]:
        """Changes to the keys or the teams change this: how many of each, and the newest
        change to either."""
        row = connection.execute(
            f"SELECT (SELECT COUNT(*) FROM {TABLE}), (SELECT COUNT(*) FROM {TEAMS}),"  # noqa: S608
            f" (SELECT MAX(updated) FROM {TABLE}), (SELECT MAX(updated) FROM {TEAMS})"
        )[0]
        return int(row[0]), int(row[1]), max(float(row[2] or 0.0), float(row[3] or 0.0))

    def all(self, connection: Connection) -> list[StoredKey]:
        rows = connection.execute(
            f"SELECT {', '.join(FIELDS)} FROM {TABLE} ORDER BY name"  # noqa: S608
        )
        return [read_row(row) for row in rows]

    def get(self, connection: Connection, name: str) -> StoredKey | None:
        rows = connection.execute(
            f"SELECT {', '.join(FIELDS)} FROM {TABLE} WHERE name = ?",  # noqa: S608
            (name,),
        )
        return read_row(rows[0]) if rows else None

    def create(self, connection: Connection, name: str, settings: dict[str, Any]) -> str:
        """Make the key `name`; return its secret. A revoked key's name may be taken."""
        secret, digest = new_secret()
        now = time.time()
        with connection.transaction(exclusive=True):
            existing = self.get(connection, name)
            if existing is not None and existing.revoked is None:
                raise KeyStoreError(f"a key named {name!r} exists (update, rotate or revoke it)")
            if existing is not None:
                connection.execute(f"DELETE FROM {TABLE} WHERE name = ?", (name,))  # noqa: S608
            updated = self.stamp(connection, now)
            columns = {
                "name": name,
                "digest": digest,
                "created": now,
                "updated": updated,
                "budget_period": "1d",
                # Its old secrets' holders are told it was revoked, not that theirs is a
                # bad key (which the guard counts, and would lock their address out for).
                "revoked_digests": ",".join(existing.digests()) if existing else None,
                **settings_columns(settings),
            }
            marks = ", ".join("?" for _ in columns)
            connection.execute(
                f"INSERT INTO {TABLE} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
                tuple(columns.values()),
            )
        return secret

    def update(self, connection: Connection, name: str, settings: dict[str, Any]) -> StoredKey:
        changes = settings_columns(settings)
        if not changes:
            raise KeyStoreError("nothing to change: give at least one option")
        return self._change(connection, name, changes)[1]

    def rotate(self, connection: Connection, name: str, grace: float) -> tuple[str, StoredKey]:
        """A new secret for `name`, and the key as the rotation found it; the old secret
        works for `grace` more seconds. What it found is read in the rotation's own
        transaction: another rotation just before it is what ends a previous secret."""
        secret, digest = new_secret()
        before, _ = self._change(
            connection,
            name,
            {"digest": digest, "previous_until": time.time() + grace},
            previous=True,
        )
        return secret, before

    def revoke(self, connection: Connection, name: str) -> StoredKey:
        return self._change(connection, name, {"revoked": time.time(), "previous_until": None})[1]

    def stamp(self, connection: Connection, now: float) -> float:
        """A change's `updated`, past every other (a key's or a team's): gateways see a
        change by the newest stamp (`marker`), so one made by a host whose clock is
        behind, or committed after a later one, must still move it."""
        return max(now, self.marker(connection)[2] + 0.001)

    def _live(self, connection: Connection, name: str) -> StoredKey:
        key = self.get(connection, name)
        if key is None:
            live = [k.name for k in self.all(connection) if not k.revoked]
            hint = did_you_mean(name, live) or " (hxgw keys list shows them)"
            raise KeyStoreError(f"no key named {name!r}{hint}")
        if key.revoked is not None:
            raise KeyStoreError(
                f"the key {name!r} is revoked (hxgw keys create {name} makes a new one)"
            )
        return key

    def _change(
        self,
        connection: Connection,
        name: str,
        changes: dict[str, Any],
        *,
        previous: bool = False,
    ) -> tuple[StoredKey, StoredKey]:
        """Set `changes` on the live key `name`; with `previous`, its digest becomes the
        previous one (a rotation). The key before and after, read in one transaction."""
        with connection.transaction(exclusive=True):
            key = self._live(connection, name)
            changes = {**changes, "updated": self.stamp(connection, time.time())}
            if previous:
                changes["previous_digest"] = key.digest
                if key.previous_digest:  # a key keeps one old secret: its holder is told
                    ended = (*key.revoked_digests, key.previous_digest)
                    changes["revoked_digests"] = ",".join(ended)
            sets = ", ".join(f"{column} = ?" for column in changes)
            connection.execute(
                f"UPDATE {TABLE} SET {sets} WHERE name = ?",  # noqa: S608
                (*changes.values(), name),
            )
            changed = self.get(connection, name)
        assert changed is not None
        return key, changed


class Cleared:
    """A setting given as `none` (or `never`): the limit, budget or expiry is taken away.
    A setting not given at all is None, and an update leaves it as it was."""


CLEARED = Cleared()


def settings_columns(settings: dict[str, Any]) -> dict[str, Any]:
    """The columns a create or update sets, from the CLI's options (None: not given)."""
    out = {k: (None if v is CLEARED else v) for k, v in settings.items() if v is not None}
    if "groups" in out:
        out["groups"] = ",".join(out["groups"]) if out["groups"] else None
    return out


def live_names(
    config_dir: str, env: Mapping[str, str], unread: list[str] | None = None
) -> dict[str, tuple[str, ...] | None]:
    """The live keys `hxgw keys` made in the store the gateway of `config_dir` would open,
    each with the groups it is limited to; none where there is no store yet, or none
    readable from here (not this user's, a read-only mount): then why, in `unread`."""
    return read_live(
        config_dir,
        env,
        lambda store, connection: {
            k.name: k.groups for k in store.all(connection) if not k.revoked
        },
        unread,
    )


def read_live(
    config_dir: str,
    env: Mapping[str, str],
    read: Callable[[KeyStore, Connection], dict[str, Any]],
    unread: list[str] | None = None,
) -> dict[str, Any]:
    """What `read` finds in the store the gateway of `config_dir` would open; nothing
    where there is no store yet, or none readable from here: then why, in `unread`."""
    try:
        settings = load_store_settings(config_dir, env)
        if not settings.database_url and not (settings.state_dir / SQLITE_FILE).exists():
            return {}  # no store yet
        store = KeyStore(open_database(settings.database_url, settings.state_dir, create=False))
        with store.connect() as connection:
            return read(store, connection)
    except ConfigError:
        return {}  # the config's own problems are said where it is loaded
    except (StoreError, OSError) as exc:  # OSError: a state directory not ours to read
        if unread is not None:
            unread.append(str(exc) or type(exc).__name__)
        return {}


def groups_lacking(
    groups_of: Mapping[str, Collection[str] | None], known: Collection[str]
) -> dict[str, list[str]]:
    """Each stored key limited to groups not among `known` (the config's), with those
    groups: it is refused (403) whenever it names them, and a keys-file key naming one
    would make the config invalid. Said by `serve` at each start and reload, and by
    `hxgw check-config`."""
    lost = {name: sorted(set(groups or ()) - set(known)) for name, groups in groups_of.items()}
    return {name: gone for name, gone in sorted(lost.items()) if gone}
