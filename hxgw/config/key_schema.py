"""The client keys' part of the schema: a key, the limits it and its end users may
have, and the team it may be in (frozen dataclasses, built at load or as the key store
is read)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

PERIODS = {"1d": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
"""The budget periods, in seconds; each starts at a multiple of it since the epoch."""
PERIOD_NAMES = {seconds: name for name, seconds in PERIODS.items()}
LIMIT_KEYS = ("rpm", "tpm", "max_parallel", "budget", "budget_period")
"""A key's limits as the files name them (a key's, its end users', a team's)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyLimits:
    """What one key may use; None is no limit."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget: float | None = None
    budget_period_s: int = PERIODS["1d"]

    def __post_init__(self) -> None:
        # A limit of 0 would refuse every request with no time to wait for; a key
        # that may not be used is a key to remove.
        for name in ("rpm", "tpm", "max_parallel"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.budget is not None and self.budget < 0:
            raise ValueError(f"budget must not be negative, got {self.budget}")
        if self.budget_period_s < 1:
            raise ValueError(f"budget_period_s must be positive, got {self.budget_period_s}")

    def limit_nothing(self) -> bool:
        """Whether they set no limit at all (a budget period alone): a request held to
        them would pay for a reservation that limits nothing."""
        return (self.rpm, self.tpm, self.max_parallel, self.budget) == (None, None, None, None)


MASTER_KEY_NAME = "master"
"""The name of MASTER_KEY, the operator's key, in logs, metrics and the ledger; no other
key may have it."""


def key_digest(secret: str) -> bytes:
    """A key's SHA-256, as the gateway holds every key it takes. A header that is not
    UTF-8 reaches us with surrogate escapes: it hashes to what its bytes would."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


GUESSABLE_UNDER = 20
"""A client key's secret shorter than this is warned of: the examples' `sk-1234` is guessed
in a few tries, lockout or not; `hxgw keys create` makes 43 random characters."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Team:
    """Keys that share limits (`teams` in the keys file): what all of them together may
    use, beside what each may use alone; and the groups all of them are kept to."""

    name: str
    limits: KeyLimits
    """Shared by its keys; they may limit nothing (a team for its groups alone)."""
    groups: frozenset[str] | None = None
    """The only groups its keys may use, whatever groups each names; None: every group."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientKey:
    """A client key, held only as its SHA-256 digest (`key_digest`)."""

    name: str
    digest: bytes = field(repr=False)
    groups: frozenset[str] | None = None
    limits: KeyLimits | None = None
    """What the key may use (hxgw.keys.limits); None: no limits."""
    per_user: KeyLimits | None = None
    """What each end user of the key may use (the one a request names in `user`,
    `safety_identifier` or `metadata.user_id`); None: no such limits."""
    team: Team | None = None
    """The team the key is in, whose limits its requests count against too."""
    expires: float | None = None
    """When it stops opening anything (Unix seconds); None: never."""
    guessable: bool = False
    """Its secret, read from the environment or the keys file, is shorter than
    GUESSABLE_UNDER characters (the operator is warned)."""
    reach: frozenset[str] | None = field(init=False, repr=False, compare=False)
    """The groups it may use: its own `groups` that its team's allow; None: every group."""

    def __post_init__(self) -> None:
        reach = self.groups
        if self.team is not None and self.team.groups is not None:
            reach = self.team.groups if reach is None else reach & self.team.groups
        object.__setattr__(self, "reach", reach)

    def may_use(self, group: str) -> bool:
        return self.reach is None or group in self.reach

    def expired(self, now: float) -> bool:
        return self.expires is not None and self.expires <= now
