"""The simulated world of `make eval-router`: the fake models, the scenario, the
request stream, and the gateway config a run routes with (see `simulate.py`)."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from hxgw.config import ClientKey, Config, load_config
from hxgw.routing.learned.dataset import Example

FailMode = Literal["5xx", "timeout"]
GROUP = "sim"
KEY = ClientKey(name="sim", digest=b"\0" * 32)


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeModel:
    """One fake upstream model: what the registry says, and how it behaves."""

    name: str
    specializations: tuple[str, ...]
    tier_score: float
    cost: float
    weight: float
    ttfb: float
    rest: float
    error_rate: float
    capacity: int


MODELS = (
    FakeModel(
        name="generalist",
        specializations=("chat", "analysis", "summarization"),
        tier_score=0.95,
        cost=10,
        weight=2,
        ttfb=0.60,
        rest=3.0,
        error_rate=0.005,
        capacity=24,
    ),
    FakeModel(
        name="coder",
        specializations=("coding",),
        tier_score=0.80,
        cost=3,
        weight=1,
        ttfb=0.30,
        rest=3.5,
        error_rate=0.01,
        capacity=12,
    ),
    FakeModel(
        name="analyst",
        specializations=("analysis", "math"),
        tier_score=0.85,
        cost=4,
        weight=1,
        ttfb=0.50,
        rest=4.0,
        error_rate=0.01,
        capacity=12,
    ),
    FakeModel(
        name="writer",
        specializations=("writing", "chat", "summarization"),
        tier_score=0.70,
        cost=2,
        weight=1,
        ttfb=0.25,
        rest=2.5,
        error_rate=0.01,
        capacity=12,
    ),
    FakeModel(
        name="translator",
        specializations=("translation",),
        tier_score=0.60,
        cost=1,
        weight=1,
        ttfb=0.15,
        rest=1.2,
        error_rate=0.01,
        capacity=8,
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """Everything a run depends on besides the strategy and the prompts."""

    models: tuple[FakeModel, ...] = MODELS
    requests: int = 20_000
    rate: float = 5.0
    seed: int = 7
    failing: str | None = "writer"
    fail_mode: FailMode = "5xx"
    first_byte_timeout: float = 10.0
    total_timeout: float = 120.0


@dataclass(frozen=True, slots=True)
class Request:
    """One request of the stream; ``draws[i]`` are model i's random numbers for it
    (error, TTFB, rest), the same whichever strategy sends it there."""

    index: int
    at: float
    text: str
    label: str
    draws: tuple[tuple[float, float, float], ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one request. Times are seconds since its arrival."""

    at: float
    label: str
    model: str | None
    attempts: int
    ttfb: float | None
    latency: float | None
    route_us: float
    route_cpu_us: float


@dataclass(frozen=True, slots=True)
class Run:
    """One strategy on one scenario. ``failing_since`` is the onset time;
    ``breaker_open_at`` the first time after it that the failing model's circuit
    opened; ``tried_after_open`` the attempts it got after that."""

    strategy: str
    scenario: Scenario
    outcomes: tuple[Outcome, ...]
    failing_since: float | None
    breaker_open_at: float | None
    tried_after_open: int


def request_stream(scenario: Scenario, prompts: Sequence[Example]) -> list[Request]:
    """The scenario's requests: Poisson arrivals, prompts drawn with replacement."""
    rng = random.Random(scenario.seed)
    at, out = 0.0, []
    for index in range(scenario.requests):
        at += rng.expovariate(scenario.rate)
        example = prompts[rng.randrange(len(prompts))]
        draws = tuple(
            (rng.random(), rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)) for _ in scenario.models
        )
        out.append(Request(index, at, example.text, example.label, draws))
    return out


def build_config(scenario: Scenario, strategy: str) -> Config:
    """A Config for the scenario, through the real loader (so it is validated)."""
    registry = {
        "models": [
            {
                "name": m.name,
                "tier_score": m.tier_score,
                "specializations": list(m.specializations),
                "mode": "chat",
                "cost": m.cost,
                "weight": m.weight,
            }
            for m in scenario.models
        ]
    }
    routing_doc = {
        "routing": {
            "strategy": strategy,
            "default_group": GROUP,
            "groups": {GROUP: [m.name for m in scenario.models]},
        }
    }
    gateway = {
        "upstreams": {"default": {"url": "http://sim.invalid"}},
        "timeouts": {"first_byte": scenario.first_byte_timeout, "total": scenario.total_timeout},
    }
    with tempfile.TemporaryDirectory(prefix="hxgw-sim-") as tmp:
        directory = Path(tmp)
        for name, doc in (
            ("routing.yaml", routing_doc),
            ("model_registry.yaml", registry),
            ("gateway.yaml", gateway),
        ):
            (directory / name).write_text(yaml.safe_dump(doc), encoding="utf-8")
        return load_config(directory, {}, serving=False)
