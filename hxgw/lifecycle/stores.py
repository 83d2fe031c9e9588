"""The daemon's stores, opened at start and closed after the drain: the keys'
limiter and the usage ledger (each worker opens its own, after the fork)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping

import structlog

from hxgw.config import Config
from hxgw.config.schema import StoreSettings
from hxgw.keys import open_limiter
from hxgw.runtime import Runtime
from hxgw.store import open_database
from hxgw.usage import Ledger

log = structlog.get_logger("hxgw.lifecycle.stores")

LEDGER_CLOSE_TIMEOUT = 10.0
"""The most stopping waits for the ledger's last batch (to the store, or the spool)."""


def open_stores(runtime: Runtime, config: Config, env: Mapping[str, str]) -> None:
    runtime.limiter = open_limiter(config.limits_store, env, lease_s=config.timeouts.total)
    runtime.ledger = open_ledger(config.store)


def open_ledger(settings: StoreSettings) -> Ledger | None:
    """The usage ledger, writing from its own thread; None, said once, when the state
    directory (the SQLite file, the spool) cannot be written: the gateway serves anyway."""
    state_dir = settings.state_dir
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        writable = os.access(state_dir, os.W_OK | os.X_OK)
    except OSError:
        writable = False
    if not writable:
        log.warning(
            "usage ledger off: the state directory cannot be written",
            state_dir=str(state_dir),
            fix="set HX_STATE_DIR or store.state_dir, or run under the unit (StateDirectory=hxgw)",
        )
        return None
    database = open_database(settings.database_url, state_dir)
    ledger = Ledger(
        database,
        state_dir / "spool",
        batch_interval=settings.batch_interval,
        batch_rows=settings.batch_rows,
        spool_max_bytes=settings.spool_max_bytes,
    )
    ledger.start()
    log.info("usage ledger", store=database.where)
    return ledger


async def close_stores(runtime: Runtime) -> None:
    await runtime.limiter.close()
    ledger = runtime.ledger
    if ledger is not None and not await asyncio.to_thread(ledger.close, LEDGER_CLOSE_TIMEOUT):
        log.error("usage ledger: the last rows were not written in time")
