"""A simulated gateway in front of fake upstream models, to compare routing strategies.

In-process: no sockets, no sleeping. A discrete-event loop on a simulated clock
replays one request stream through the real ``hxgw.routing.routes.Routes.resolve`` and
``decide`` with a fresh ``Memory``, then walks the candidates the way
``hxgw.pipeline.forward`` does: ``health.started(now)``;
on a retryable failure ``health.failed(now)`` and the next candidate; on success
``health.first_byte(ttfb of the attempt)``, and at the last byte
``health.succeeded(time since the request arrived)``. ``decide`` gets the
simulated clock's ``now`` for its circuit and stall checks. Routing overhead is real time around ``resolve``
+ ``decide``, both wall (``perf_counter``) and the thread's CPU time; it does
not move the simulated clock. Prompts repeat (each ~44 times in 20,000
requests), so the classifier's word cache is warmer than with live traffic,
where most prompts are new: ``eval_router`` also reports the decisions on the
first sight of each prompt.

The default scenario (``Scenario()``; every number is a field):
- Requests: ``requests`` prompts drawn uniformly, with replacement, from the
  held-out set (so the true task is known), arriving as a Poisson process of
  ``rate`` per second (default 20,000 at 5/s: 67 simulated minutes). The same
  stream (times, prompts, and each model's random draws for each request) is
  used for every strategy, so strategies differ only by their choices.
- Models, all in one group in this order (``failover`` uses it as is;
  ``weighted`` uses ``weight``; ``ml-based-routing`` sees tier, specializations
  and cost). Every task has a specialist; the generalist is the strongest and
  dearest model, the natural first choice of a static config:

  | model      | specializations              | tier | cost | weight | TTFB | rest | 5xx  | capacity |
  |------------|------------------------------|------|------|--------|------|------|------|----------|
  | generalist | chat, analysis, summarization| 0.95 | 10   | 2      | 0.60 | 3.0  | 0.5% | 24       |
  | coder      | coding                       | 0.80 | 3    | 1      | 0.30 | 3.5  | 1%   | 12       |
  | analyst    | analysis, math               | 0.85 | 4    | 1      | 0.50 | 4.0  | 1%   | 12       |
  | writer     | writing, chat, summarization | 0.70 | 2    | 1      | 0.25 | 2.5  | 1%   | 12       |
  | translator | translation                  | 0.60 | 1    | 1      | 0.15 | 1.2  | 1%   | 8        |

  TTFB and the rest of the answer (first byte to last) are lognormal around
  those medians (seconds; sigma 0.5 and 0.6). Beyond ``capacity`` requests in
  flight a model shares itself out: every time is stretched by
  in_flight / capacity; beyond twice its capacity it answers 429 with
  ``Retry-After: 1`` (20 ms). Its own 5xx come after ~50 ms (lognormal).
- Failure: from the arrival of request ``requests // 2`` on, ``failing``
  answers every request with a 503 after ~50 ms (``fail_mode="5xx"``) or
  never answers, so the gateway's first-byte timeout ends each attempt
  (``fail_mode="timeout"``). It never recovers. The default is ``writer``:
  the model ml-based-routing relies on most in the healthy run (~37% of its
  requests), so the failure hits the strategy under evaluation hardest.
- Gateway: ``first_byte`` timeout 10 s and ``total`` 120 s (an attempt gets
  min(first_byte, what is left of total)); health and breaker settings and
  scoring weights are hxgw's defaults.
- Not modelled: failures after the first byte, the gateway's own CPU time,
  retries by clients, answer quality (a request served by a non-specialist
  still counts as a success).

Per request: the model that served it (or none), attempts, time to first byte
and to last byte since arrival (so time lost on failed attempts counts),
and the routing overhead.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hxgw.config import Config
from hxgw.routing import decision as routing
from hxgw.routing.health import HealthBook
from hxgw.routing.learned.loading import load_classifier
from hxgw.routing.routes import Routes
from hxgw.routing.strategies import Memory
from hxgw.tools.router_eval.scenario import (
    GROUP,
    KEY,
    MODELS,
    FailMode,
    FakeModel,
    Outcome,
    Request,
    Run,
    Scenario,
    build_config,
    request_stream,
)

__all__ = [
    "GROUP",
    "KEY",
    "MODELS",
    "FailMode",
    "FakeModel",
    "Outcome",
    "Request",
    "Run",
    "Scenario",
    "build_config",
    "request_stream",
    "simulate",
]


class _Clock:
    now = 0.0

    def monotonic(self) -> float:
        return self.now


@dataclass(slots=True)
class _Flight:
    request: Request
    candidates: tuple[str, ...]
    route_us: float
    route_cpu_us: float
    attempts: int = 0
    ttfb: float | None = None


class _Simulation:
    """The event loop: ``events`` is a heap of (time, sequence number, action)."""

    def __init__(self, scenario: Scenario, config: Config, strategy: str) -> None:
        self.scenario, self.config, self.strategy = scenario, config, strategy
        self.routes = Routes(config)
        self.clock = _Clock()
        self.events: list[tuple[float, int, Callable[[], None]]] = []
        self.order = itertools.count()
        self.outcomes: dict[int, Outcome] = {}
        self.failing_since: float | None = None
        self.breaker_open_at: float | None = None
        self.tried_after_open = 0
        self.memory = Memory(HealthBook(config.routing.health), random.Random(scenario.seed))
        self.fakes = {m.name: (i, m) for i, m in enumerate(scenario.models)}
        uses = config.routing.uses("ml-based-routing")
        self.classifier = load_classifier(config.routing.classifier) if uses else None

    def later(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.events, (self.clock.now + delay, next(self.order), action))

    def run(self, requests: Sequence[Request]) -> Run:
        for request in requests:
            heapq.heappush(self.events, (request.at, next(self.order), self._arrival(request)))
        if self.scenario.failing is not None:
            self.failing_since = requests[len(requests) // 2].at
        while self.events:
            self.clock.now, _, action = heapq.heappop(self.events)
            action()
        return Run(
            strategy=self.strategy,
            scenario=self.scenario,
            outcomes=tuple(self.outcomes[i] for i in range(len(requests))),
            failing_since=self.failing_since,
            breaker_open_at=self.breaker_open_at,
            tried_after_open=self.tried_after_open,
        )

    def _arrival(self, request: Request) -> Callable[[], None]:
        def arrive() -> None:
            body = {"messages": [{"role": "user", "content": request.text}]}
            wall, cpu = time.perf_counter(), time.thread_time_ns()
            route = self.routes.resolve(None, None, KEY, "chat")
            decision = routing.decide(
                self.config, route, body, self.memory, self.classifier, now=self.clock.now
            )
            cpu, wall = time.thread_time_ns() - cpu, time.perf_counter() - wall
            names = tuple(m.name for m in decision.candidates)
            self._attempt(_Flight(request, names, wall * 1e6, cpu / 1e3), 0)

        return arrive

    def _attempt(self, flight: _Flight, k: int) -> None:
        request, now = flight.request, self.clock.now
        budget = min(
            self.scenario.first_byte_timeout, request.at + self.scenario.total_timeout - now
        )
        if k == len(flight.candidates) or budget <= 0:
            self._finish(flight, None, None)
            return
        name = flight.candidates[k]
        health = self.memory.health[name]
        token = health.started(self.clock.now)
        flight.attempts += 1
        if self._failing(name) and self.breaker_open_at is not None:
            self.tried_after_open += 1
        kind, first, last = self._answer(name, request, health.inflight)
        if kind == "ok" and first > budget:
            kind, first = "silent", budget
        if kind == "silent":
            first = budget

        def failed(retry_after: float | None = None) -> None:
            health.failed(self.clock.now, retry_after=retry_after, token=token)
            if self._failing(name) and self.breaker_open_at is None and health.circuit == "open":
                self.breaker_open_at = self.clock.now
            self._attempt(flight, k + 1)

        def first_byte() -> None:
            health.first_byte(first, token)
            flight.ttfb = self.clock.now - request.at
            self.later(last - first, done)

        def done() -> None:
            health.succeeded(self.clock.now - request.at, token)
            self._finish(flight, name, self.clock.now - request.at)

        if kind == "ok":
            self.later(first, first_byte)
        elif kind == "429":
            self.later(first, lambda: failed(retry_after=1.0))
        else:
            self.later(first, failed)

    def _failing(self, name: str) -> bool:
        return (
            name == self.scenario.failing
            and self.failing_since is not None
            and self.clock.now >= self.failing_since
        )

    def _answer(self, name: str, request: Request, inflight: int) -> tuple[str, float, float]:
        """The fake upstream: (kind, seconds to first byte or error, seconds to last byte)."""
        i, fake = self.fakes[name]
        u, z_first, z_rest = request.draws[i]
        error_after = 0.05 * math.exp(0.5 * z_first)
        if self._failing(name):
            return ("silent" if self.scenario.fail_mode == "timeout" else "5xx"), error_after, 0.0
        if inflight > 2 * fake.capacity:
            return "429", 0.02, 0.0
        if u < fake.error_rate:
            return "5xx", error_after, 0.0
        stretch = max(1.0, inflight / fake.capacity)
        first = fake.ttfb * math.exp(0.5 * z_first) * stretch
        return "ok", first, first + fake.rest * math.exp(0.6 * z_rest) * stretch

    def _finish(self, flight: _Flight, model: str | None, latency: float | None) -> None:
        r = flight.request
        ttfb = flight.ttfb if model else None
        args = (r.at, r.label, model, flight.attempts, ttfb, latency)
        self.outcomes[r.index] = Outcome(*args, flight.route_us, flight.route_cpu_us)


def simulate(
    scenario: Scenario,
    strategy: str,
    requests: Sequence[Request],
    warm_with: Sequence[str] = (),
) -> Run:
    """Replay ``requests`` through ``strategy`` on a fresh Memory and return what happened.
    The classifier's word cache is emptied, then filled with ``warm_with``, so that
    every run starts from the same cache state."""
    if scenario.failing is not None and scenario.failing not in {m.name for m in scenario.models}:
        raise ValueError(f"the failing model {scenario.failing!r} is not one of the models")
    simulation = _Simulation(scenario, build_config(scenario, strategy), strategy)
    if simulation.classifier is not None:
        simulation.classifier.clear_cache()
        for text in warm_with:
            simulation.classifier.predict_proba(text)
    return simulation.run(requests)
