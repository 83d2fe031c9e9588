"""The gateway's configuration: frozen dataclasses, one snapshot per load.

A snapshot is built completely and validated before anything uses it, so a
reload either swaps in a whole new consistent config or keeps the old one.
Reading and validating the files lives in `load.py`; routing.yaml's part of the schema
in `routing_schema.py`, the client keys' and teams' in `key_schema.py`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from hxgw.config.body_limits import Limits as Limits
from hxgw.config.key_schema import GUESSABLE_UNDER as GUESSABLE_UNDER
from hxgw.config.key_schema import LIMIT_KEYS as LIMIT_KEYS
from hxgw.config.key_schema import MASTER_KEY_NAME as MASTER_KEY_NAME
from hxgw.config.key_schema import PERIOD_NAMES as PERIOD_NAMES
from hxgw.config.key_schema import PERIODS as PERIODS
from hxgw.config.key_schema import ClientKey as ClientKey
from hxgw.config.key_schema import KeyLimits as KeyLimits
from hxgw.config.key_schema import Team as Team
from hxgw.config.key_schema import key_digest as key_digest
from hxgw.config.price import Price as Price
from hxgw.config.routing_schema import STRATEGIES as STRATEGIES
from hxgw.config.routing_schema import Group as Group
from hxgw.config.routing_schema import HealthSettings as HealthSettings
from hxgw.config.routing_schema import Routing as Routing
from hxgw.config.routing_schema import ScoringWeights as ScoringWeights
from hxgw.config.transforms import Transform
from hxgw.store.locate import DEFAULT_STATE_DIR

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# The modes as LiteLLM's model registry names them: what an endpoint needs of a model.
Mode = Literal[
    "chat",
    "embedding",
    "completion",
    "audio_transcription",
    "audio_speech",
    "image_generation",
    "moderation",
    "rerank",
]
MODES: tuple[Mode, ...] = get_args(Mode)
LogFormat = Literal["kv", "json"]
DEFAULT_UPSTREAM = "default"
DEFAULT_COMPLETION = 256
"""The answer a model writes at most when the registry says no `max_output_tokens`: what
a request that sets no `max_tokens` reserves against a key's budget and TPM."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Model:
    name: str
    tier_score: float
    specializations: tuple[str, ...]
    upstream_model: str
    upstream: str = DEFAULT_UPSTREAM
    mode: Mode | None = None
    transforms: tuple[Transform, ...] = ()
    weight: float = 1.0
    cost: float | None = None
    """The router's relative cost; defaults from `price` (input + output per Mtok)."""
    max_context: int | None = None
    max_output_tokens: int | None = None
    """The most the model writes in one answer: what a request that sets no `max_tokens`
    reserves against a key's budget and TPM (None: DEFAULT_COMPLETION)."""
    price: Price | None = None
    """None: the model costs nothing in budgets."""

    def serves(self, mode: Mode) -> bool:
        """A model without a declared mode is trusted with every endpoint."""
        if self.mode is None or self.mode == mode:
            return True
        return mode == "completion" and self.mode == "chat"


@dataclass(frozen=True, slots=True, kw_only=True)
class Upstream:
    name: str
    url: str
    key: str | None = field(default=None, repr=False)
    max_concurrent: int | None = None
    """Requests in flight to this upstream at once; None: an equal share of what the
    process can hold (see hxgw.upstream.admission)."""
    max_queued: int = 1000
    """Requests that may wait for a turn when it is at its cap; past it, shed at once."""
    queue_timeout: float = 5.0
    """The longest a request waits for a turn before it fails over or gets 503."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    connect: float = 5.0
    first_byte: float = 120.0
    """A stream's first byte; a plain answer's is `answer`."""
    answer: float = 600.0
    """A plain (not streamed) answer, whose first byte is its last: a reasoning model may
    take minutes, and cut, it would be sent to the next candidate and billed twice. The
    SDKs' own default."""
    idle: float = 120.0
    total: float = 900.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsStore:
    """Where the per-key limits live (see hxgw.keys.limiters): Redis or Valkey at `url`
    (REDIS_URL overrides), else memory, shared by the workers of this instance."""

    url: str | None = field(default=None, repr=False)
    """repr=False: a URL may carry a password."""
    fail_open: bool = False
    """With the store unreachable: serve, counting locally (True), or answer 503 (False,
    the default: money spent over a budget cannot be taken back)."""
    timeout: float = 0.5
    """Seconds to connect to the store, and for it to answer a batch, before the batch
    fails: every limited request waits that long at most for its decision."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BadKeyPolicy:
    """After `max_failures` bad keys within `window` seconds, an address is refused for
    `lockout` seconds (see hxgw.keys.guard)."""

    max_failures: int = 20
    window: float = 60.0
    lockout: float = 60.0
    trusted_proxies: tuple[Network, ...] = ()
    """Proxies whose X-Forwarded-For names the client's address."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Tls:
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadinessProbe:
    interval: float = 5.0
    stale_after: float = 15.0
    max_loop_lag: float = 1.0
    """Past this event-loop lag (seconds) /readyz says "overloaded"; 0 never does."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsAccess:
    """Who may read /metrics: by default any unrestricted client key, or the metrics key.
    `auth: false` opens it, for a listener that only a private network reaches."""

    auth: bool = True
    key_digest: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSettings:
    """Where state lives (see hxgw.store) and how the usage ledger writes it."""

    state_dir: Path = DEFAULT_STATE_DIR
    """The SQLite file hxgw.db and the ledger's spool/; systemd's StateDirectory=hxgw."""
    database_url: str | None = field(default=None, repr=False)
    """DATABASE_URL: PostgreSQL instead of the SQLite file. May hold a password."""
    batch_interval: float = 1.0
    """Seconds between the ledger's writes: at most this much usage is lost in a crash."""
    batch_rows: int = 500
    spool_max_bytes: int = 256 << 20
    ledger: bool = True
    """False: no usage ledger (the stored keys still work)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Listen:
    host: str = "0.0.0.0"
    port: int = 4010


@dataclass(frozen=True, slots=True, kw_only=True)
class Logging:
    level: str = "info"
    format: LogFormat = "kv"
    access_log: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    config_dir: Path
    listen: Listen
    upstreams: Mapping[str, Upstream]
    timeouts: Timeouts
    limits: Limits
    keys: tuple[ClientKey, ...]
    teams: tuple[Team, ...] = ()
    """The keys file's teams: its keys' and those a stored key may join."""
    per_user: KeyLimits | None = None
    """What each end user of a key that gives them no limits gets (`auth.per_user`):
    the keys file's keys have it in theirs, the stored keys take it when read."""
    logging: Logging
    drain_timeout: float
    metrics: MetricsAccess
    readiness: ReadinessProbe
    bad_keys: BadKeyPolicy
    tls: Tls | None
    workers: int | Literal["auto"] = 1
    store: StoreSettings = field(default_factory=StoreSettings)
    routing: Routing
    models: Mapping[str, Model]
    files: tuple[Path, ...] = ()
    limits_store: LimitsStore = field(default_factory=LimitsStore)
    cors_origins: tuple[str, ...] = ("*",)
    """Origins whose pages may call the API routes (`*`: any); empty: no CORS."""
