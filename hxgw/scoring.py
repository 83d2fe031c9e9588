"""ml-based-routing: score each candidate from the request's task, the model, and its health.

    score = tier * tier_score
          + specialization * P(task is one the model specializes in)
          + health * (1 - error rate)
          - latency * (EWMA time to first byte / slowest candidate's)
          - cost * (cost / dearest candidate's)
          - load * (in flight / busiest candidate's)

The task probabilities come from a learned classifier over the prompt
(`hxgw.router`); the weights come from routing.yaml (`routing.scoring`). Every
term is kept as a reason, so each decision can be explained.
"""

from __future__ import annotations

from itertools import repeat
from typing import NamedTuple

from hxgw.config import Model, ScoringWeights
from hxgw.health import HealthBook

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


def score_models(
    models: tuple[Model, ...], task: dict[str, float], health: HealthBook, weights: ScoringWeights
) -> list[Scored]:
    """Candidates best first; ties keep the group's order. This runs for every request, so
    it only computes the score, term by term as `Scored.terms` does (same order, so the
    same float); `terms` and `reasons` are rebuilt from the inputs when someone asks."""
    stats = [health[m.name] for m in models]
    ttfbs = [h.ewma_ttfb for h in stats]
    loads = [h.inflight for h in stats]
    scale = Scale(
        weights,
        max([t or 0.0 for t in ttfbs], default=0.0) or 1.0,
        max([m.cost or 0.0 for m in models], default=0.0) or 1.0,
        max(loads, default=0) or 1,
    )
    tier, fits, healthy = weights.tier, weights.specialization, weights.health
    latency, cost, load = weights.latency, weights.cost, weights.load
    probability = task.get
    scored = []
    for model, stat, ttfb, inflight in zip(models, stats, ttfbs, loads, strict=True):
        fit = sum(map(probability, model.specializations, repeat(0.0)))
        errors = stat.error_rate
        score = tier * model.tier_score + fits * fit + healthy * (1.0 - errors)
        if ttfb is not None:
            score += -latency * ttfb / scale.slowest
        if model.cost:
            score += -cost * model.cost / scale.dearest
        if inflight:
            score += -load * inflight / scale.busiest
        scored.append(Scored(model, score, fit, errors, ttfb, inflight, scale))
    scored.sort(key=_best_first)
    return scored


def _best_first(scored: Scored) -> float:
    return -scored.score
