"""routing.yaml's tuning (health and circuit breakers, the scoring weights, the
learned router's classifier file, checked by loading it) and what a model costs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hxgw.config.reader import Section
from hxgw.config.schema import HealthSettings, Price, ScoringWeights
from hxgw.routing.learned.loading import load_classifier


def read_health(section: Section) -> HealthSettings:
    base = HealthSettings()
    breaker = section.section(
        "circuit_breaker", frozenset({"failures", "cooldown", "max_cooldown"})
    )
    health = section.section(
        "health", frozenset({"ewma_alpha", "error_window", "stall_floor", "stall_factor"})
    )
    return HealthSettings(
        ewma_alpha=float(health.number("ewma_alpha", base.ewma_alpha, positive=True, maximum=1)),
        error_window=health.number("error_window", base.error_window, positive=True, integer=True),
        stall_floor=float(health.number("stall_floor", base.stall_floor, positive=True)),
        stall_factor=float(health.number("stall_factor", base.stall_factor, positive=True)),
        breaker_failures=breaker.number(
            "failures", base.breaker_failures, positive=True, integer=True
        ),
        breaker_cooldown=float(breaker.number("cooldown", base.breaker_cooldown, positive=True)),
        breaker_max_cooldown=float(
            breaker.number("max_cooldown", base.breaker_max_cooldown, positive=True)
        ),
    )


def read_scoring(section: Section) -> ScoringWeights:
    base = ScoringWeights()
    names = tuple(f.name for f in dataclasses.fields(ScoringWeights))
    weights = section.section("scoring", frozenset(names))
    return ScoringWeights(
        **{
            name: float(weights.number(name, getattr(base, name), minimum=0.0, maximum=100.0))
            for name in names
        }
    )


def read_classifier(section: Section, directory: Path) -> Path | None:
    given = section.string("classifier")
    if given is None:
        return None
    path: Path = directory / given
    try:
        load_classifier(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        section.report(f"cannot load the classifier model {str(path)!r}: {exc}", "classifier")
        return None
    return path


def read_price(entry: Section) -> Price | None:
    """A model's `price: {input_per_mtok, output_per_mtok}`."""
    section = entry.section("price", frozenset({"input_per_mtok", "output_per_mtok"}))
    given = (
        section.number("input_per_mtok", None, minimum=0.0, required=True),
        section.number("output_per_mtok", None, minimum=0.0, required=True),
    )
    if given[0] is None or given[1] is None:
        return None
    return Price(input_per_mtok=float(given[0]), output_per_mtok=float(given[1]))


def cost_of(price: Price | None) -> float | None:
    """The router's relative cost of a model that has a price and no `cost` of its own."""
    return None if price is None else price.input_per_mtok + price.output_per_mtok
