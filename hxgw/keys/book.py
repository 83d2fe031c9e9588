"""The stored keys a serving gateway knows, by digest, read again when the table
changes: asked once a second, in a thread, so a key made, changed or revoked with
`hxgw keys` opens (or stops opening) within a second, without a reload. A request
with a stored key's prefix that is not known yet waits for the next read rather than
being refused (`next_read`): a key works from the moment `hxgw keys create` returns.

A stored key whose name a config key (MASTER_KEY's `master`, `auth.keys_file`)
already has is left out, with a warning: names are how logs, limits and the
ledger tell keys apart. A stored key that gives its end users no limits gives them
the config's `auth.per_user` (one a reload changes at the next read, within a second).
While the store cannot be read, the keys last read keep working, and the log says so
once a minute; a stored key not among them then gets a
503 (hxgw.pipeline.auth), not a 401: the store could not say whether it is one.

Before the keys read are published, `seed` is given them with the connection that read
them: the budgets of keys this process has not seen begin from what they spent, and
keys whose spend cannot be read are not published until it can (revocations and the
keys it already let in are).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import NamedTuple

import structlog

from hxgw.config import ClientKey, KeyLimits, Team
from hxgw.keys.store import KeyStore
from hxgw.keys.stored_key import StoredKey
from hxgw.keys.team_store import StoredTeam, TeamStore
from hxgw.store import Connection, StoreError

log = structlog.get_logger("hxgw.keys")

INTERVAL = 1.0
WARN_EVERY = 60.0
READ_WAIT = INTERVAL + 2.0
"""The longest a request waits for the next read of the store (`next_read`)."""

REVOKED = "was revoked"
HIDDEN = "is set aside: the gateway's config has a key of its name"
"""What the holder of a stored key the config's key of the same name hides is told."""

Seed = Callable[[Connection, Iterable[ClientKey]], None]
"""Told the keys about to be published; raises StoreError when it cannot read."""


class ConfigSays(NamedTuple):
    """What the config says of the stored keys."""

    names: frozenset[str]
    """Its own keys' names: a stored key of one of them is set aside."""
    per_user: KeyLimits | None = None
    """What each end user of a stored key that gives them no limits gets."""
    teams: tuple[Team, ...] = ()
    """The keys file's teams (those its keys are in): a stored key may be in one, and
    one wins over a stored team of its name."""


class StoredKeys:
    def __init__(self, store: KeyStore, seed: Seed | None = None) -> None:
        self.store = store
        self.seed = seed
        self.by_digest: Mapping[bytes, ClientKey] = MappingProxyType({})
        self.ended: Mapping[bytes, tuple[str, str]] = MappingProxyType({})
        """The digests of keys that opened the gateway and open it no more -> the key's
        name and why (revoked, or hidden by a config key of its name): refused at once,
        saying why, to whoever still holds one, and counted as no bad key."""
        self._marker: tuple[int, int, float] | None = None
        self._config = ConfigSays(frozenset())
        self._warned: set[str] = set()
        self._failing_since: float | None = None
        self._reading_since: float | None = None
        """When the read under way began (a store that does not answer holds it)."""
        self._warned_at = 0.0
        self._connection: Connection | None = None
        self._next_read: asyncio.Future[None] | None = None
        """Done when the read that has not begun yet ends; made only when awaited."""

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(StoreError):
                self._connection.close()
            self._connection = None

    def refresh(self, config: ConfigSays) -> bool:
        """Read the table again if it (or what the config says of it) changed. Blocking.

        One connection, kept: opening the SQLite file every second would come and go
        with three descriptors, and a PostgreSQL connection costs a round trip more."""
        try:
            if self._connection is None:
                self._connection = self.store.connect()
            connection = self._connection
            marker = self.store.marker(connection)
            if marker == self._marker and config == self._config:
                return False
            stored = self.store.all(connection)
            teams = self._teams(TeamStore(self.store).all(connection), config)
            by_digest, ended = self._read(stored, config, teams)
            if self.seed is not None:
                try:
                    self.seed(connection, by_digest.values())
                except StoreError:
                    # The keys not let in yet wait for their spend; a revocation must not.
                    known = {key.name for key in self.by_digest.values()}
                    self.by_digest = MappingProxyType(
                        {d: key for d, key in by_digest.items() if key.name in known}
                    )
                    self.ended = MappingProxyType(ended)
                    raise
        except StoreError:
            self.close()
            raise
        self.by_digest = MappingProxyType(by_digest)
        self.ended = MappingProxyType(ended)
        self._marker, self._config = marker, config
        return True

    def first_read(self, config: ConfigSays) -> None:
        """The read before the first request, so that stored keys work from the start;
        or, when the store cannot be read, from the read that succeeds (said in the log)."""
        try:
            self.refresh(config)
        except StoreError as exc:
            self._failing_since = self._warned_at = time.monotonic()
            log.warning("cannot read the key store yet; retrying every second", error=str(exc))

    def _teams(self, stored: list[StoredTeam], config: ConfigSays) -> dict[str, Team]:
        """The teams a stored key may be in, by name: those made by `hxgw teams` that
        limit something or keep to groups, and the keys file's, which win a name both
        have."""
        teams = {team.name: made for team in stored if (made := team.team()) is not None}
        for team in config.teams:
            if team.name in teams:
                self._warn_once(
                    f"team {team.name}",
                    "a stored team has a keys-file team's name; its keys are held to the file's",
                    team=team.name,
                )
            teams[team.name] = team
        return teams

    def _read(
        self, stored: list[StoredKey], config: ConfigSays, teams: dict[str, Team]
    ) -> tuple[dict[bytes, ClientKey], dict[bytes, tuple[str, str]]]:
        by_digest: dict[bytes, ClientKey] = {}
        ended: dict[bytes, tuple[str, str]] = {}
        for key in stored:
            gone = key.digests() if key.revoked is not None else key.revoked_digests
            ended.update((bytes.fromhex(digest), (key.name, REVOKED)) for digest in gone)
            if key.revoked is not None:
                continue
            if key.name in config.names:
                self._warn_once(
                    key.name, "a stored key has a config key's name; it is ignored", key=key.name
                )
                ended.update((bytes.fromhex(d), (key.name, HIDDEN)) for d in key.digests())
                continue
            team = teams.get(key.team) if key.team is not None else None
            if key.team is not None and team is None:
                # Gone (a reload took it out of the keys file), or it sets nothing.
                self._warn_once(
                    f"{key.name} team={key.team}",
                    "a stored key's team sets nothing or is gone; the key's own limits and"
                    " groups alone hold",
                    key=key.name,
                    team=key.team,
                )
            for client_key in key.client_keys(config.per_user, team):
                by_digest[client_key.digest] = client_key
        return by_digest, ended

    def _warn_once(self, what: str, event: str, **fields: str) -> None:
        """Say `event` the first time `what` is found, not at every read of the store."""
        if what not in self._warned:
            self._warned.add(what)
            log.warning(event, **fields)

    @property
    def ever_read(self) -> bool:
        """Whether the store has been read once: until then no stored key can be checked."""
        return self._marker is not None

    def current(self) -> bool:
        """Whether the keys held are the store's: it has been read, and is read still
        (its last read did not fail, and the one under way is not overdue)."""
        reading = self._reading_since
        overdue = reading is not None and time.monotonic() - reading >= READ_WAIT
        return self._marker is not None and self._failing_since is None and not overdue

    async def next_read(self) -> None:
        """Return once a read of the store that begins after this call has ended, or
        after READ_WAIT seconds, however that read went."""
        if self._next_read is None:
            self._next_read = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(READ_WAIT):
                # Shielded: a waiter that leaves must not cancel the others' wait.
                await asyncio.shield(self._next_read)

    async def watch(self, config: Callable[[], ConfigSays]) -> None:
        """Refresh once a second, for as long as the daemon serves."""
        while True:
            await asyncio.sleep(INTERVAL)
            # Those waiting now arrived before this read began: it is theirs.
            waiting, self._next_read = self._next_read, None
            self._reading_since = time.monotonic()
            try:
                await asyncio.to_thread(self.refresh, config())
            except StoreError as exc:
                self._failed(exc)
            else:
                if self._failing_since is not None:
                    log.info("the key store answers again")
                    self._failing_since = None
            finally:
                self._reading_since = None
                if waiting is not None and not waiting.done():
                    waiting.set_result(None)

    def _failed(self, exc: StoreError) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "cannot read the key store; the keys read last keep working",
                error=str(exc),
                keys=len(self.by_digest),
            )


def keys_now(config_keys: Iterable[ClientKey], stored: StoredKeys | None) -> Iterator[ClientKey]:
    """The keys that open the gateway now: the config's, then those `hxgw keys` made
    (`stored`, whose book leaves out a key that has a config key's name)."""
    yield from config_keys
    yield from stored.by_digest.values() if stored is not None else ()
