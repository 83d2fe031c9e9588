"""Routing strategies: each turns a group's models into the order they are tried in.

Every strategy returns an ordering, never a single pick, so failover always
has somewhere to go next. `ml-based-routing` lives in `scoring.py`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from hxgw.config import Model
from hxgw.routing.health import HealthBook


class Memory:
    """What routing remembers between requests: each model's health and each group's
    round-robin position. One per process; it outlives config reloads."""

    def __init__(self, health: HealthBook | None = None, rng: random.Random | None = None) -> None:
        self.health = HealthBook() if health is None else health
        self.rng = rng or random.Random()
        self._turns: dict[str, int] = {}

    def take_turn(self, group: str) -> int:
        turn = self._turns.get(group, 0)
        self._turns[group] = turn + 1
        return turn


Order = Callable[[tuple[Model, ...], str, Memory, bool], tuple[Model, ...]]
"""A strategy: the group's models, its name, the memory, and whether the request is a
stream (`latency` ranks a stream by time to a first byte, a plain answer by its wait)."""


def failover(
    models: tuple[Model, ...], group: str, memory: Memory, streamed: bool
) -> tuple[Model, ...]:
    """The group's own order, strictly."""
    return models


def round_robin(
    models: tuple[Model, ...], group: str, memory: Memory, streamed: bool
) -> tuple[Model, ...]:
    """Each request starts one model further along the group; the rest follow in order."""
    start = memory.take_turn(group) % len(models)
    return models[start:] + models[:start]


def weighted(
    models: tuple[Model, ...], group: str, memory: Memory, streamed: bool
) -> tuple[Model, ...]:
    """A random order where a model with weight w comes first w/total of the time
    (weighted sampling without replacement, by the key u**(1/w))."""
    return tuple(
        sorted(models, key=lambda m: memory.rng.random() ** (1.0 / m.weight), reverse=True)
    )


def least_busy(
    models: tuple[Model, ...], group: str, memory: Memory, streamed: bool
) -> tuple[Model, ...]:
    """Fewest requests in flight first; ties in turn, as round-robin takes them: one
    request at a time finds every model idle, and kept in the group's order the first
    model had them all."""
    turn = memory.take_turn(group) % len(models)
    rotated = models[turn:] + models[:turn]
    return tuple(sorted(rotated, key=lambda m: memory.health[m.name].inflight))


EXPLORE_EVERY = 20
"""Under `latency` and `ml-based-routing`, one request in this many goes first to a model
that is not the best, to each in turn: a model's figures (its time to a first byte, its
error rate) move only with the requests it serves, so one that was slow or failed once
and recovered would otherwise never be measured again."""


def explore(ordered: list[Model], group: str, memory: Memory) -> tuple[Model, ...]:
    """`ordered`, best first, but for one request in EXPLORE_EVERY of the group, which
    goes first to another model, to each in turn."""
    turn = memory.take_turn(group)
    if len(ordered) > 1 and turn % EXPLORE_EVERY == EXPLORE_EVERY - 1:
        ordered.insert(0, ordered.pop(1 + (turn // EXPLORE_EVERY) % (len(ordered) - 1)))
    return tuple(ordered)


def latency(
    models: tuple[Model, ...], group: str, memory: Memory, streamed: bool
) -> tuple[Model, ...]:
    """Lowest recent wait first (ModelHealth.wait: for a stream, time to a first byte).
    A model not measured yet goes first, so that every model gets measured, the one with fewest in
    flight first: until its first answer comes back it has no time, and a burst would
    otherwise all go to the first of the group. Now and then another goes first
    (EXPLORE_EVERY)."""
    health = memory.health

    def ttfb(model: Model) -> tuple[int, float]:
        stat = health[model.name]
        value = stat.wait(streamed)
        return (0, stat.inflight) if value is None else (1, value)

    return explore(sorted(models, key=ttfb), group, memory)


ORDERS: dict[str, Order] = {
    "failover": failover,
    "round-robin": round_robin,
    "weighted": weighted,
    "least-busy": least_busy,
    "latency": latency,
}
