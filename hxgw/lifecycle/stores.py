"""The daemon's stores, opened at start and closed after the drain: the keys'
limiter, the stored keys, the owners of files and batches and the usage ledger (each
worker opens its own, after the fork). All but the limiter share the database: the
SQLite file in the state directory, or PostgreSQL (DATABASE_URL)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from hxgw.config import Config, StoreSettings, load_config
from hxgw.config.gateway import GATEWAY, LEDGER_CLOSE_TIMEOUT
from hxgw.errors import ConfigError
from hxgw.keys import limits_where, open_limiter
from hxgw.keys.book import ConfigSays, StoredKeys
from hxgw.keys.owners import Owners
from hxgw.keys.store import KeyStore, groups_lacking, live_names
from hxgw.keys.window import Spent
from hxgw.lifecycle.aside import aside
from hxgw.lifecycle.seeds import Seeds, read_new_keys, spend_now
from hxgw.runtime import Runtime
from hxgw.store import Database, open_database, too_old
from hxgw.usage import Ledger
from hxgw.usage.once import Added
from hxgw.usage.spool import unusable

log = structlog.get_logger("hxgw.lifecycle.stores")

SPOOL = "spool"
"""The ledger's spool, in the state directory."""
STATE_DIR_FIX = "set HX_STATE_DIR or store.state_dir, or run under the unit (StateDirectory=hxgw)"
"""What mends a state directory the gateway cannot write."""


RELOAD_READ_TIMEOUT = 25.0
"""The longest a reload waits for the config files to be read: shorter than a supervisor
waits for its workers' answers (30 s), so that a worker says why rather than nothing."""


async def reload_serving(
    config_dir: str, env: Mapping[str, str], runtime: Runtime, running: Config
) -> Config:
    """`load_serving` for a reload, which a file that never answers (a FIFO, a hung
    network mount) must not hold up for ever: ConfigError past RELOAD_READ_TIMEOUT."""
    try:
        read = aside(load_serving, config_dir, env, runtime)
        config = await asyncio.wait_for(read, RELOAD_READ_TIMEOUT)
    except TimeoutError:
        raise ConfigError(
            f"the config files were not read within {RELOAD_READ_TIMEOUT:g}s: is one of "
            "them a file that never answers (a FIFO, a hung network mount)?"
        ) from None
    gone = {f.name for f in running.files} - {f.name for f in config.files}
    if GATEWAY in gone:
        # gateway.yaml may be left out at start, but one that vanishes under a running
        # gateway (a move, a deploy half done) would put every setting back to its
        # default, the upstream's URL included: almost never what the reload meant.
        raise ConfigError(
            f"{GATEWAY}: file not found in {config_dir}, though the running config was "
            f"read from it: put it back (an empty {GATEWAY} serves every default)"
        )
    return config


def load_serving(config_dir: str, env: Mapping[str, str], runtime: Runtime | None = None) -> Config:
    """The config as a gateway serves it. Without MASTER_KEY or a keys file a key made by
    `hxgw keys` will do: the running gateway's (`runtime`), or at start the store's."""

    unread: list[str] = []

    def stored_keys() -> bool:
        if runtime is not None and runtime.stored_keys is not None:
            return bool(runtime.stored_keys.by_digest)
        return bool(live_names(config_dir, env, unread))

    try:
        return load_config(config_dir, env, stored_keys=stored_keys)
    except ConfigError as exc:
        if unread:  # "no client key" may be a store that holds some but cannot be read
            # On the problem's line, not one of its own: a line is a problem (a rejected
            # reload counts them).
            raise ConfigError(f"{exc} (the key store cannot be read: {unread[0]})") from None
        raise


def open_stores(runtime: Runtime, config: Config, env: Mapping[str, str]) -> Seeds | None:
    """Open the stores; what the budgets begin from, for a reload's keys (None without
    a ledger)."""
    settings = config.store
    writable = _writable(settings.state_dir)
    off = None if settings.database_url else _sqlite_unusable(writable)
    if off is not None:
        why, fix = off
        log.error(
            f"usage ledger, stored keys and file owners off: {why}; keys made by `hxgw keys` "
            "are refused, and files and batches serve only the master key",
            state_dir=str(settings.state_dir),
            fix=fix,
        )
        _open_limiter(runtime, config, env, {})
        return None
    if not writable and settings.ledger:
        log.warning(
            "the usage ledger has no spool: while PostgreSQL is unreachable its rows are lost",
            state_dir=str(settings.state_dir),
            fix=STATE_DIR_FIX,
        )
    spool_trouble = unusable(settings.state_dir / SPOOL) if writable and settings.ledger else None
    if spool_trouble is not None:
        log.warning(
            "the usage ledger has no spool: while the store is unreachable its rows are lost",
            spool=str(settings.state_dir / SPOOL),
            why=spool_trouble,
            fix="make it a directory the gateway's user may read and write, or remove it",
        )
    database = open_database(settings.database_url, settings.state_dir)
    # Read before the ledger's writer starts to replay its spool into the store (the
    # budgets would not wait for it): the spool's rows are counted where they lie.
    seeds = Seeds(database, settings.state_dir / SPOOL, config.keys) if settings.ledger else None
    runtime.stored_keys = stored = StoredKeys(KeyStore(database), seed=seeds)
    runtime.owners = Owners(database)
    stored.first_read(_config_says(config))
    warn_of_lost_groups(runtime, config)
    if seeds is not None:
        seeds.read_pending()
    runtime.ledger = open_ledger(database, settings, runtime) if settings.ledger else None
    _open_limiter(runtime, config, env, {} if seeds is None else seeds.spent, seeds)
    return seeds


async def reloaded(runtime: Runtime, seeds: Seeds | None, config: Config) -> None:
    """What a reload's config asks of the stores before it serves: the spend of the keys
    it adds, leases as long as its total timeout, and a word on stored keys it leaves
    without their groups."""
    await read_new_keys(seeds, config.keys)
    # A request may now run that long: a shorter lease would free its slot (and charge
    # its estimate) while it still runs.
    runtime.limiter.set_lease(config.timeouts.total)
    warn_of_lost_groups(runtime, config)


def warn_of_lost_groups(runtime: Runtime, config: Config) -> None:
    """A stored key limited to groups the config lacks is refused (403) whenever it names
    them, and a keys-file key naming one makes the config invalid: said at the start and
    at each reload, as `hxgw check-config` says it; and so for a stored team that keeps
    its keys to such groups (a keys-file team's are checked at load)."""
    stored = list(runtime.stored_keys.by_digest.values()) if runtime.stored_keys else []
    groups_of = {key.name: key.groups for key in stored}
    for name, gone in groups_lacking(groups_of, config.routing.groups).items():
        log.warning(
            "a stored key is limited to groups the config lacks",
            key=name,
            groups=",".join(gone),
            fix=f"hxgw keys update {name} --groups ...",
        )
    teams = {key.team.name: key.team.groups for key in stored if key.team is not None}
    for name, gone in groups_lacking(teams, config.routing.groups).items():
        log.warning(
            "a team keeps its keys to groups the config lacks",
            team=name,
            groups=",".join(gone),
            fix=f"hxgw teams update {name} --groups ...",
        )


def _open_limiter(
    runtime: Runtime,
    config: Config,
    env: Mapping[str, str],
    spent: Spent,
    seeds: Seeds | None = None,
) -> None:
    store = config.limits_store
    spend = None if seeds is None else functools.partial(spend_now, seeds)
    runtime.limiter = open_limiter(
        store, env, lease_s=config.timeouts.total, spent=spent, spend=spend
    )
    log.info("key limits", store=limits_where(store, env))


def watch_stores(runtime: Runtime, config: Callable[[], Config]) -> list[asyncio.Task[None]]:
    """What runs beside the server: the stored keys' refresh."""
    if runtime.stored_keys is None:
        return []
    return [asyncio.create_task(runtime.stored_keys.watch(lambda: _config_says(config())))]


def _config_says(config: Config) -> ConfigSays:
    return ConfigSays(frozenset(key.name for key in config.keys), config.per_user, config.teams)


def _sqlite_unusable(writable: bool) -> tuple[str, str] | None:
    """Why the SQLite file cannot hold the stores, and what would mend it; None when it can."""
    if not writable:
        return "the state directory cannot be written", STATE_DIR_FIX
    if (old := too_old()) is not None:
        return (
            old,
            "give DATABASE_URL (PostgreSQL), or run under a Python linked with a newer SQLite",
        )
    return None


def _writable(state_dir: Path) -> bool:
    try:
        # Made here, it is the service's alone: its database holds the keys' hashes and
        # every app's usage. (The unit's StateDirectoryMode= is 0750, for its group; the
        # files in it are 0600 either way.)
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(state_dir, os.W_OK | os.X_OK)


def open_ledger(database: Database, settings: StoreSettings, runtime: Runtime) -> Ledger:
    """The usage ledger, writing from its own thread, which tells the loop what the rows
    billed apart added (the metrics are the loop's alone)."""
    state_dir = settings.state_dir
    loop = asyncio.get_running_loop()

    def billed(added: Added) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: its metrics are gone
            loop.call_soon_threadsafe(runtime.metrics.key_billed, *added)

    ledger = Ledger(
        database,
        state_dir / SPOOL,
        batch_interval=settings.batch_interval,
        batch_rows=settings.batch_rows,
        spool_max_bytes=settings.spool_max_bytes,
        on_billed=billed,
    )
    ledger.start()
    log.info("usage ledger", store=database.where)
    return ledger


async def close_stores(runtime: Runtime) -> None:
    await runtime.limiter.close()
    if runtime.stored_keys is not None:
        runtime.stored_keys.close()
    if runtime.owners is not None:
        await runtime.owners.close()
    ledger = runtime.ledger
    if ledger is not None and not await asyncio.to_thread(ledger.close, LEDGER_CLOSE_TIMEOUT):
        log.error("usage ledger: the store did not take the last rows in time")
