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

from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Scored:
    model: Model
    score: float
    terms: tuple[tuple[str, float, float], ...]
    """(term, its contribution to the score, what was measured)"""

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(
            f"{_READS[term](measured)} ({value:+.2f})" for term, value, measured in self.terms
        )


def score_models(
    models: tuple[Model, ...], task: dict[str, float], health: HealthBook, weights: ScoringWeights
) -> list[Scored]:
    """Candidates best first; ties keep the group's order. This runs for every request, so
    it only computes numbers; `Scored.reasons` turns them into words when someone asks."""
    stats = [health[m.name] for m in models]
    slowest = max((h.ewma_ttfb or 0.0 for h in stats), default=0.0) or 1.0
    dearest = max((m.cost or 0.0 for m in models), default=0.0) or 1.0
    busiest = max((h.inflight for h in stats), default=0) or 1
    scored = []
    for model, stat in zip(models, stats, strict=True):
        fit = sum(task.get(label, 0.0) for label in model.specializations)
        errors = stat.error_rate
        terms = [
            ("tier", weights.tier * model.tier_score, model.tier_score),
            ("fit", weights.specialization * fit, fit),
            ("errors", weights.health * (1.0 - errors), errors),
        ]
        if stat.ewma_ttfb is not None:
            terms.append(("ttfb", -weights.latency * stat.ewma_ttfb / slowest, stat.ewma_ttfb))
        if model.cost:
            terms.append(("cost", -weights.cost * model.cost / dearest, model.cost))
        if stat.inflight:
            terms.append(("load", -weights.load * stat.inflight / busiest, stat.inflight))
        total = sum(term[1] for term in terms)
        scored.append(Scored(model=model, score=total, terms=tuple(terms)))
    scored.sort(key=lambda s: -s.score)
    return scored
