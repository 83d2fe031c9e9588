"""ml-based-routing: score each candidate from the request's task, the model, and its health.

    score = tier * tier_score
          + specialization * P(task is one the model specializes in)
          + health * (1 - error rate)
          - latency * (EWMA time to first byte / slowest candidate's)
          - cost * (cost / dearest candidate's)
          - load * (in flight / busiest candidate's)

The task probabilities come from a learned classifier over the prompt
(`hxgw.routing.learned`); the weights come from routing.yaml (`routing.scoring`). Every
term can be shown as a reason, so each decision can be explained.

Why `rank` keeps plain tuples and `Scored` comes later: this runs for every
request, and only `hxgw route` reads the reasons. Building a NamedTuple costs
six times a plain tuple; `max(a, b)` seven times an `if`; five candidates make
that a measurable share of a decision (counted with valgrind: 97k -> 57k
instructions a call).
"""

from __future__ import annotations

from operator import itemgetter
from typing import NamedTuple

from hxgw.config import Model, ScoringWeights
from hxgw.routing.health import HealthBook

# How each term reads when a decision is explained; formatting only happens then.
_READS = {
    "tier": lambda v: f"tier {v:.2f}",
    "fit": lambda v: f"fits task with p={v:.2f}",
    "errors": lambda v: f"error rate {v:.0%}",
    "ttfb": lambda v: f"ttfb {v * 1000:.0f}ms",
    "cost": lambda v: f"cost {v:g}",
    "load": lambda v: f"{v:.0f} in flight",
}


class Scale(NamedTuple):
    """What every candidate of one decision is measured against."""

    weights: ScoringWeights
    slowest: float
    dearest: float
    busiest: int


class Scored(NamedTuple):
    """A candidate's score and what it was computed from. A NamedTuple, not a frozen
    dataclass: five are built per request, and a tuple is built several times faster."""

    model: Model
    score: float
    fit: float
    errors: float
    ttfb: float | None
    inflight: int
    scale: Scale

    @property
    def terms(self) -> tuple[tuple[str, float, float], ...]:
        """(term, its contribution to the score, what was measured); they sum to `score`."""
        w, model = self.scale.weights, self.model
        terms = [
            ("tier", w.tier * model.tier_score, model.tier_score),
            ("fit", w.specialization * self.fit, self.fit),
            ("errors", w.health * (1.0 - self.errors), self.errors),
        ]
        if self.ttfb is not None:
            terms.append(("ttfb", -w.latency * self.ttfb / self.scale.slowest, self.ttfb))
        if model.cost:
            terms.append(("cost", -w.cost * model.cost / self.scale.dearest, model.cost))
        if self.inflight:
            terms.append(("load", -w.load * self.inflight / self.scale.busiest, self.inflight))
        return tuple(terms)

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(
            f"{_READS[term](measured)} ({value:+.2f})" for term, value, measured in self.terms
        )


class Ranking(NamedTuple):
    """Candidates best first, as `(score, model, fit, error rate, ttfb, in flight)` rows,
    and what they were measured against (a `Scale`, built only if asked for);
    `scored` turns them into `Scored`s."""

    rows: list[tuple[float, Model, float, float, float | None, int]]
    weights: ScoringWeights
    slowest: float
    dearest: float
    busiest: int

    def models(self) -> tuple[Model, ...]:
        return tuple([row[1] for row in self.rows])

    def scored(self) -> tuple[Scored, ...]:
        scale = Scale(self.weights, self.slowest, self.dearest, self.busiest)
        return tuple(
            Scored(model, score, fit, errors, ttfb, inflight, scale)
            for score, model, fit, errors, ttfb, inflight in self.rows
        )


def rank(
    models: tuple[Model, ...],
    task: dict[str, float],
    health: HealthBook,
    weights: ScoringWeights,
    streamed: bool = False,
) -> Ranking:
    """Score the candidates and order them best first; ties keep the group's order. Each
    score is summed term by term as `Scored.terms` lists them (same order, same float).
    Latency is each model's wait for a request like this one (`streamed` or not)."""
    stats = [health[m.name] for m in models]
    slowest, dearest, busiest = 0.0, 0.0, 0
    for model, stat in zip(models, stats, strict=True):
        wait = stat.wait(streamed)
        if wait and wait > slowest:
            slowest = wait
        if model.cost and model.cost > dearest:
            dearest = model.cost
        if stat.inflight > busiest:
            busiest = stat.inflight
    slowest, dearest, busiest = slowest or 1.0, dearest or 1.0, busiest or 1
    tier, fits, healthy = weights.tier, weights.specialization, weights.health
    latency, cost, load = weights.latency, weights.cost, weights.load
    probability = task.get
    rows = []
    for model, stat in zip(models, stats, strict=True):
        fit = 0.0
        for label in model.specializations:
            fit += probability(label, 0.0)
        errors, ttfb, inflight = stat.error_rate, stat.wait(streamed), stat.inflight
        score = tier * model.tier_score + fits * fit + healthy * (1.0 - errors)
        if ttfb is not None:
            score += -latency * ttfb / slowest
        if model.cost:
            score += -cost * model.cost / dearest
        if inflight:
            score += -load * inflight / busiest
        rows.append((score, model, fit, errors, ttfb, inflight))
    rows.sort(key=_SCORE, reverse=True)
    return Ranking(rows, weights, slowest, dearest, busiest)


_SCORE = itemgetter(0)
"""A row's score; `sort(reverse=True)` keeps equal scores in the group's order."""
