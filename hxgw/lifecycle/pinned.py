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

import structlog

from hxgw.config import Config, StoreSettings, Tls
from hxgw.config.schema import LimitsStore, LogFormat
from hxgw.observe.workers import SHARED_DIR

log = structlog.get_logger("hxgw.lifecycle")

PINNED_FILE = "restart-only.pickle"


@dataclasses.dataclass(frozen=True, slots=True)
class RestartOnly:
    """What hxgw.config.warnings calls restart-only (its `_RESTART_ONLY`): TLS on or off,
    the limits store, the usage store, the log's level and format. Not
    `limits.client_idle_timeout`: request bodies are held to a new one at once, in any
    process, and a worker's idle connections closing sooner or later than its
    siblings' harms no one."""

    tls: Tls | None
    limits_store: LimitsStore
    store: StoreSettings
    log_level: str
    log_format: LogFormat

    @classmethod
    def of(cls, config: Config) -> RestartOnly:
        return cls(
            tls=config.tls,
            limits_store=config.limits_store,
            store=config.store,
            log_level=config.logging.level,
            log_format=config.logging.format,
        )

    def apply(self, config: Config) -> Config:
        """`config` with these settings in place of its own. Of TLS, only whether it is on:
        a new certificate's files are a reload's to read (`reread_certificate`)."""
        logging = dataclasses.replace(config.logging, level=self.log_level, format=self.log_format)
        switched = (self.tls is None) != (config.tls is None)
        return dataclasses.replace(
            config,
            tls=self.tls if switched else config.tls,
            limits_store=self.limits_store,
            store=self.store,
            logging=logging,
        )


_LAYOUT = "; ".join(
    f"{kind.__name__}: {', '.join(f.name for f in dataclasses.fields(kind))}"
    for kind in (RestartOnly, Tls, LimitsStore, StoreSettings)
)
"""The fields of what is pinned: a pin of another layout (another version of hxgw, one
upgraded in place) would unpickle into these classes with its values in the wrong
fields, as slotted dataclasses take theirs by position."""


def pin(config: Config, scratch: Path) -> None:
    """Write what `config` sets that a reload cannot change, for the workers."""
    # The directory is the supervisor's own (0700, tempfile's): no one else reads or writes it.
    (scratch / PINNED_FILE).write_bytes(pickle.dumps((_LAYOUT, RestartOnly.of(config))))


def pinned(env: Mapping[str, str]) -> RestartOnly | None:
    """What the supervisor pinned, in a worker (None in a process of its own)."""
    scratch = env.get(SHARED_DIR)
    path = Path(scratch) / PINNED_FILE if scratch else None
    if path is None or not path.is_file():
        return None
    restart_only: object = None
    try:
        layout, restart_only = pickle.loads(path.read_bytes())  # noqa: S301 - its supervisor's
    except (pickle.UnpicklingError, AttributeError, TypeError, ValueError, EOFError, ImportError):
        layout = None
    if layout != _LAYOUT or not isinstance(restart_only, RestartOnly):
        # Written by another version of hxgw (one upgraded in place): better the files'
        # settings than a worker that cannot start, again and again.
        log.error(
            "cannot read the settings the supervisor pinned; this worker runs the files' own",
            path=str(path),
        )
        return None
    return restart_only
