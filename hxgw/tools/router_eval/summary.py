"""A simulated run's figures: specialization match, success, latency, failovers."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hxgw.tools.router_eval.latency import percentile
from hxgw.tools.router_eval.scenario import Outcome, Run


@dataclass(frozen=True, slots=True)
class Summary:
    """A run's figures. Latencies (seconds) are of the requests that succeeded;
    ``served`` is each model's share of all requests."""

    requests: int
    match: float
    success: float
    latency: tuple[float, float]
    ttfb: tuple[float, float]
    failovers: float
    route_us: tuple[float, float]
    route_cpu_us: tuple[float, float]
    served: dict[str, float]


def specialization_match(
    outcomes: Sequence[Outcome], specializations: Mapping[str, Sequence[str]]
) -> float:
    """Share of requests served by a model that specializes in the request's true task;
    a request that no model served counts as not matched."""
    hits = sum(1 for o in outcomes if o.model is not None and o.label in specializations[o.model])
    return hits / len(outcomes) if outcomes else 0.0


def _spread(values: Sequence[float]) -> tuple[float, float]:
    return (percentile(values, 0.5), percentile(values, 0.99)) if values else (math.nan, math.nan)


def summarize(run: Run, since: float = 0.0, until: float = math.inf) -> Summary:
    """The run's figures over the requests that arrived in [since, until)."""
    outcomes = [o for o in run.outcomes if since <= o.at < until]
    ok = [o for o in outcomes if o.model is not None]
    n = len(outcomes) or 1
    served = Counter(o.model for o in ok)
    return Summary(
        requests=len(outcomes),
        match=specialization_match(
            outcomes, {m.name: m.specializations for m in run.scenario.models}
        ),
        success=len(ok) / n,
        latency=_spread([o.latency for o in ok if o.latency is not None]),
        ttfb=_spread([o.ttfb for o in ok if o.ttfb is not None]),
        failovers=sum(o.attempts - 1 for o in outcomes) / n,
        route_us=_spread([o.route_us for o in outcomes]),
        route_cpu_us=_spread([o.route_cpu_us for o in outcomes]),
        served={m.name: served[m.name] / n for m in run.scenario.models},
    )
