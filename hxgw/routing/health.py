"""Live health of each model, learned from the requests the gateway sends it.

Per model: EWMAs of time to first byte, of plain answers' wait and of total
latency, the error rate over the last outcomes, the requests in flight, and a
circuit breaker. The book lives for the whole process and outlives config
reloads, so a reload does not forget that a model is broken; models removed
from the config are dropped from it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from hxgw.config.schema import HealthSettings
from hxgw.routing.waiting import Waiting
from hxgw.routing.warn_rate import WarnRate

log = structlog.get_logger("hxgw.routing.health")

CircuitState = Literal["closed", "open", "half_open"]


@dataclass(slots=True)
class ModelHealth:
    name: str
    settings: HealthSettings
    ewma_ttfb: float | None = None
    """How soon it answers: time to a first byte of streams and of answers that come at
    once (embeddings)."""
    ewma_plain: float | None = None
    """How long its plain answers took (a written answer's first byte is its last)."""
    ewma_latency: float | None = None
    inflight: int = 0
    requests: int = 0
    circuit: CircuitState = "closed"
    consecutive_failures: int = 0
    open_until: float = 0.0
    probing: bool = False
    failed_probes: int = 0
    _outcomes: deque[bool] = field(default_factory=deque)
    _errors: int = 0
    _waiting: Waiting = field(default_factory=Waiting)
    _next_token: int = 0
    _last_before_open: int = 0
    """The last token given out before the circuit last opened: requests up to it were
    sent to the model as it was before, so their outcomes say nothing about it now."""
    _last_answered: int = 0
    """The latest-started request that had its first byte (its token)."""
    _probe: int = 0
    """The token of the last request sent to the half-open circuit."""
    _opened_at: float = 0.0
    _spared: bool = False
    """Opened for as long as its upstream asked (Retry-After), not by its own cool-down."""
    _warn_rate: WarnRate = field(default_factory=WarnRate)

    def warn(self, event: str, **fields: Any) -> None:
        """Log a failure of the model, if its WarnRate lets it be now, with how many went
        unlogged since the line before."""
        unsaid = self._warn_rate.take(time.monotonic())
        if unsaid is not None:
            log.warning(event, **fields, **({"more_since_last": unsaid} if unsaid else {}))

    @property
    def error_rate(self) -> float:
        return self._errors / len(self._outcomes) if self._outcomes else 0.0

    def stalled(self, now: float) -> bool:
        """Whether the model seems to have stopped answering: its oldest request of a kind
        has waited past that kind's stall limit for a first byte, and none sent after it
        had one (else the model answers, and the oldest is a long one)."""
        return self._waiting.stalled(now, self._stall_limit, self._last_answered)

    def _stall_limit(self, timed: bool) -> float:
        """How long a request waits for its first byte before the model seems stalled: by
        its own kind's wait (`wait`), so that a slow model's plain answers do not look
        stalled, nor a silent stream wait for as long as those take."""
        usual = self.wait(timed) or 0.0
        return max(self.settings.stall_floor, self.settings.stall_factor * usual)

    def wait(self, streamed: bool) -> float | None:
        """How soon the model answers a request like the one at hand, as the strategies
        rank it: a stream (or an answer that comes at once) by its time to a first byte,
        a plain answer by how long its plain answers took; each, not measured yet, by the
        other."""
        first, other = (self.ewma_ttfb, self.ewma_plain)
        if not streamed:
            first, other = other, first
        return other if first is None else first

    def circuit_now(self, now: float) -> CircuitState:
        """The circuit as the next request will find it: an open one whose cool-down has
        passed is half-open, though no request has come to turn it so yet."""
        if self.circuit == "open" and now >= self.open_until:
            return "half_open"
        return self.circuit

    def allows(self, now: float) -> bool:
        """May a request go to this model now? An open circuit lets one probe through
        once its cool-down has passed (half-open); the probe's outcome decides."""
        if self.circuit == "closed":
            waiting = self._waiting
            if not (waiting.plain or waiting.timed) or not self.stalled(now):
                return True
            # Stalled: one request at a time still goes, when every one waiting of a stalled
            # kind has waited past the limit, and its first byte ends the stall. A long
            # plain answer (its first byte is its last) must not keep a model out meanwhile.
            return self._waiting.probe_due(now, self._stall_limit, self._last_answered)
        if self.circuit == "open" and now >= self.open_until:
            self.circuit = "half_open"
            self.probing = False
        return self.circuit == "half_open" and not self.probing

    def started(self, now: float | None = None, timed: bool = True) -> int:
        """Count a request going out; the token names it until its first byte (or failure),
        so that a wait with no answer can be seen while it lasts. `timed`: as `first_byte`
        takes it (not a plain answer the model writes)."""
        self.inflight += 1
        self.requests += 1
        self._next_token += 1
        if self.circuit == "half_open":
            self.probing, self._probe = True, self._next_token
        if now is not None:
            self._waiting.add(self._next_token, now, timed)
        return self._next_token

    def answered(self, token: int) -> None:
        """An answer came whose verdict waits (hxgw.pipeline.failover.blame): no stall meanwhile."""
        self._waiting.pop(token)

    def waiting_from(self, token: int, now: float) -> None:
        """A request's wait for a first byte starts over at its turn at its upstream's cap:
        a wait in that queue is no stall of the model's."""
        self._waiting.restart(token, now)

    def first_byte(self, seconds: float, token: int | None = None, *, timed: bool = True) -> None:
        """A request's first byte came, `seconds` after it was sent. Not `timed`: a plain
        answer the model wrote, whose first byte is its last, says how long the answer is,
        not how soon the model answers (it would make a model look slow to every stream),
        and goes to its own EWMA."""
        self._waiting.pop(token or 0)
        if token is not None and token > self._last_answered:
            self._last_answered = token
        if timed:
            self.ewma_ttfb = self._ewma(self.ewma_ttfb, seconds)
        else:
            self.ewma_plain = self._ewma(self.ewma_plain, seconds)
        if self.circuit == "half_open" and token is not None and token == self._probe:
            # The model answers: a probe that is a long stream must not keep it out while
            # the stream lasts. Should the stream fail, that is a failure like any other.
            self._close()

    def succeeded(self, latency: float, token: int | None = None) -> None:
        self.inflight -= 1
        self.ewma_latency = self._ewma(self.ewma_latency, latency)
        self._record(ok=True)
        if self._stale(token):
            return  # a long stream that began before the breaker opened closes nothing
        self._close()

    def _close(self) -> None:
        self.consecutive_failures = self.failed_probes = 0
        if self.circuit != "closed":
            log.info("circuit closed: the model answered again", model=self.name)
            # Back, it starts a new window: the failures that opened the circuit would
            # open it again at the next one.
            self._outcomes.clear()
            self._errors = 0
        self.circuit, self.probing = "closed", False

    def failed(
        self, now: float, retry_after: float | None = None, token: int | None = None
    ) -> None:
        """A retryable failure; `retry_after` (from a 429) opens the circuit for that long."""
        self._waiting.pop(token or 0)
        self.inflight -= 1
        self._record(ok=False)
        if self._stale(token):
            return  # the circuit is already open; the probe, not this, decides
        self.consecutive_failures += 1
        settings = self.settings
        if retry_after:
            self._open(now, retry_after, "its upstream asked to be spared (Retry-After)")
            self._spared = True
        elif self.circuit == "half_open":
            self.failed_probes += 1
            self._open(now, self.cooldown(), "its probe failed")
        elif self.consecutive_failures >= settings.breaker_failures:
            failures = f"{self.consecutive_failures} failures in a row"
            self._open(now, self.cooldown(), failures)
        elif len(self._outcomes) >= settings.error_window and (
            self.error_rate >= settings.breaker_error_rate
        ):
            share = f"{self._errors} of its last {len(self._outcomes)} requests failed"
            self._open(now, self.cooldown(), share)

    def cooldown(self) -> float:
        """How long the circuit stays open: doubled by each failed probe, up to the cap."""
        settings = self.settings
        cap = max(settings.breaker_max_cooldown, settings.breaker_cooldown)
        return min(settings.breaker_cooldown * 2.0**self.failed_probes, cap)

    def reconfigured(self, settings: HealthSettings) -> None:
        """New settings from a reload: an open circuit's wait is cut to the new cool-down
        (an operator who shortens it wants the model back), not one its upstream asked for."""
        self.settings = settings
        if self.circuit == "open" and not self._spared:
            self.open_until = min(self.open_until, self._opened_at + self.cooldown())

    def _open(self, now: float, seconds: float, why: str) -> None:
        if self.circuit != "open":
            log.warning("circuit opened", model=self.name, why=why, seconds=round(seconds, 1))
            self.open_until = now + seconds
            self._spared = False
        else:  # a shorter wait asked for later does not cut the one under way
            self.open_until = max(self.open_until, now + seconds)
        self._opened_at = now
        self.circuit, self.probing = "open", False
        self._last_before_open = self._next_token

    def _stale(self, token: int | None) -> bool:
        """Did this request start before the circuit (still not closed) last opened?"""
        return token is not None and token <= self._last_before_open and self.circuit != "closed"

    def finished_other(self, token: int | None = None) -> None:
        """Ended without saying anything about the model (client left, request's own 4xx)."""
        self._waiting.pop(token or 0)
        self.inflight -= 1
        if self.probing and not self._stale(token):
            self.probing = False

    def _ewma(self, current: float | None, sample: float) -> float:
        if current is None:
            return sample
        alpha = self.settings.ewma_alpha
        return alpha * sample + (1 - alpha) * current

    def _record(self, ok: bool) -> None:
        self._outcomes.append(ok)
        self._errors += not ok
        while len(self._outcomes) > self.settings.error_window:  # a reload may shrink it
            self._errors -= not self._outcomes.popleft()


class HealthBook(dict[str, ModelHealth]):
    """Every model's health by name, for the life of the process; a model's entry is
    made the first time it is asked for.

    A dict with `__missing__` rather than a class with `__getitem__`: every request
    looks up its models a few times, and a dict answers without a Python call."""

    def __init__(self, settings: HealthSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or HealthSettings()
        self.names: frozenset[str] | None = None
        """The models the config serving now names (None until one is configured): a
        request still running on an older config may make an entry for one it removed."""

    def serving(self) -> list[ModelHealth]:
        """The entries of the models the config serving now names."""
        names = self.names
        return [h for h in self.values() if names is None or h.name in names]

    def __missing__(self, name: str) -> ModelHealth:
        health = self[name] = ModelHealth(name=name, settings=self.settings)
        return health

    def configure(
        self, settings: HealthSettings, names: Iterable[str], forget: Iterable[str] = ()
    ) -> None:
        """After a reload: new settings for everyone, forget models that are gone and
        those in `forget` (sent elsewhere now: what their old target did says nothing of
        the new one, and an operator re-points a model to mend it)."""
        self.names = frozenset(names)
        keep = self.names - set(forget)
        self.settings = settings
        for name in [n for n in self if n not in keep]:
            del self[name]
        for health in self.values():
            health.reconfigured(settings)
