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


@dataclass(frozen=True, slots=True)
class Scored:
    model: Model
    score: float
    reasons: tuple[str, ...]


def score_models(
    models: tuple[Model, ...], task: dict[str, float], health: HealthBook, weights: ScoringWeights
) -> list[Scored]:
    """Candidates best first; ties keep the group's order."""
    stats = [health[m.name] for m in models]
    slowest = max((h.ewma_ttfb or 0.0 for h in stats), default=0.0) or 1.0
    dearest = max((m.cost or 0.0 for m in models), default=0.0) or 1.0
    busiest = max((h.inflight for h in stats), default=0) or 1
    scored = []
    for model, stat in zip(models, stats, strict=True):
        fit = sum(p for label, p in task.items() if label in model.specializations)
        terms = [
            (weights.tier * model.tier_score, f"tier {model.tier_score:.2f}"),
            (weights.specialization * fit, f"fits task with p={fit:.2f}"),
            (weights.health * (1.0 - stat.error_rate), f"error rate {stat.error_rate:.0%}"),
        ]
        if stat.ewma_ttfb is not None:
            terms.append(
                (-weights.latency * stat.ewma_ttfb / slowest, f"ttfb {stat.ewma_ttfb * 1000:.0f}ms")
            )
        if model.cost:
            terms.append((-weights.cost * model.cost / dearest, f"cost {model.cost:g}"))
        if stat.inflight:
            terms.append((-weights.load * stat.inflight / busiest, f"{stat.inflight} in flight"))
        total = sum(value for value, _ in terms)
        reasons = tuple(f"{label} ({value:+.2f})" for value, label in terms)
        scored.append(Scored(model=model, score=round(total, 4), reasons=reasons))
    return sorted(scored, key=lambda s: -s.score)
