"""routing.yaml as the gateway holds it: the groups and their strategies, the health
settings and circuit breakers, and the scoring weights of ml-based-routing. Frozen
dataclasses, part of the config snapshot (hxgw.config.schema)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

STRATEGIES = ("failover", "round-robin", "weighted", "least-busy", "latency", "ml-based-routing")


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthSettings:
    ewma_alpha: float = 0.3
    error_window: int = 50
    breaker_failures: int = 5
    breaker_error_rate: float = 0.5
    """The share of failures over a full `error_window` that opens the circuit too: a model
    failing every other request never fails `breaker_failures` times in a row."""
    breaker_cooldown: float = 30.0
    breaker_max_cooldown: float = 300.0
    """Each failed half-open probe doubles the cool-down, up to this: a probe is a real
    client's request, and a model that stays down should cost few of them."""
    stall_floor: float = 5.0
    stall_factor: float = 4.0
    """A model whose oldest request has waited for its first byte longer than
    max(stall_floor, stall_factor x its EWMA time to first byte) is treated like an open
    circuit: a model that went silent is noticed before its first timeout ends."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    name: str
    models: tuple[str, ...]
    strategy: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoringWeights:
    """How ml-based-routing weighs what it knows about a candidate (see docs/routing.md)."""

    tier: float = 1.0
    specialization: float = 1.5
    health: float = 1.0
    latency: float = 0.5
    cost: float = 0.2
    load: float = 0.3


@dataclass(frozen=True, slots=True, kw_only=True)
class Routing:
    strategy: str
    default_group: str
    failover_order: tuple[str, ...]
    groups: Mapping[str, Group]
    health: HealthSettings = field(default_factory=HealthSettings)
    scoring: ScoringWeights = field(default_factory=ScoringWeights)
    classifier: Path | None = None

    def strategy_of(self, group: str | None) -> str:
        chosen = self.groups[group].strategy if group is not None else None
        return chosen or self.strategy

    def uses(self, strategy: str) -> bool:
        return self.strategy == strategy or any(
            g.strategy == strategy for g in self.groups.values()
        )
