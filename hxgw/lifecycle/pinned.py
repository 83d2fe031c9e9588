"""The settings a reload cannot change, pinned for workers: each runs with those its
supervisor started with, whatever the files say when it starts. A worker started again
after a reload that staged a change (TLS switched on, another limits store) would
otherwise take it alone: one socket speaking TLS beside one that does not, a key's limits
counted in two stores.

The supervisor writes them once, into its own scratch directory (`HX_WORKERS_DIR`), as
the frozen dataclasses they are (pickled: its children read it, no one else); a worker
applies them to every config it loads, the one it starts on and each a reload reads.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Mapping
from pathlib import Path

from hxgw.config import Config, StoreSettings, Tls
from hxgw.config.schema import LimitsStore, LogFormat
from hxgw.observe.workers import SHARED_DIR

PINNED_FILE = "restart-only.pickle"


@dataclasses.dataclass(frozen=True, slots=True)
class RestartOnly:
    """What hxgw.config.warnings calls restart-only (its `_RESTART_ONLY`): TLS, the idle
    timeout of client connections, the limits store, the usage store, the log's level and
    format."""

    tls: Tls | None
    client_idle_timeout: float
    limits_store: LimitsStore
    store: StoreSettings
    log_level: str
    log_format: LogFormat

    @classmethod
    def of(cls, config: Config) -> RestartOnly:
        return cls(
            tls=config.tls,
            client_idle_timeout=config.limits.client_idle_timeout,
            limits_store=config.limits_store,
            store=config.store,
            log_level=config.logging.level,
            log_format=config.logging.format,
        )

    def apply(self, config: Config) -> Config:
        """`config` with these settings in place of its own."""
        limits = dataclasses.replace(config.limits, client_idle_timeout=self.client_idle_timeout)
        logging = dataclasses.replace(config.logging, level=self.log_level, format=self.log_format)
        return dataclasses.replace(
            config,
            tls=self.tls,
            limits=limits,
            limits_store=self.limits_store,
            store=self.store,
            logging=logging,
        )


def pin(config: Config, scratch: Path) -> None:
    """Write what `config` sets that a reload cannot change, for the workers."""
    path = scratch / PINNED_FILE
    path.write_bytes(pickle.dumps(RestartOnly.of(config)))
    path.chmod(0o600)


def pinned(env: Mapping[str, str]) -> RestartOnly | None:
    """What the supervisor pinned, in a worker (None in a process of its own)."""
    scratch = env.get(SHARED_DIR)
    path = Path(scratch) / PINNED_FILE if scratch else None
    if path is None or not path.is_file():
        return None
    restart_only = pickle.loads(path.read_bytes())  # noqa: S301 - its supervisor's, mode 0600
    assert isinstance(restart_only, RestartOnly)
    return restart_only
