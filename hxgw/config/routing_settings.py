"""routing.yaml: its groups, strategy and failover order, its tuning (health and
circuit breakers, the scoring weights, the learned router's classifier file, checked by
loading it), and what a model costs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from hxgw.config.reader import Problems, Section, kind_of, name_problem
from hxgw.config.schema import (
    STRATEGIES,
    Group,
    HealthSettings,
    Model,
    Price,
    Routing,
    ScoringWeights,
)
from hxgw.errors import did_you_mean
from hxgw.routing.learned.classifier import LABELS
from hxgw.routing.learned.loading import load_classifier


def read_health(section: Section) -> HealthSettings:
    base = HealthSettings()
    breaker = section.section(
        "circuit_breaker", frozenset({"failures", "error_rate", "cooldown", "max_cooldown"})
    )
    health = section.section(
        "health", frozenset({"ewma_alpha", "error_window", "stall_floor", "stall_factor"})
    )
    return HealthSettings(
        ewma_alpha=float(health.number("ewma_alpha", base.ewma_alpha, positive=True, maximum=1)),
        error_window=health.number("error_window", base.error_window, positive=True, integer=True),
        stall_floor=float(
            health.number("stall_floor", base.stall_floor, positive=True, unit="seconds")
        ),
        stall_factor=float(health.number("stall_factor", base.stall_factor, positive=True)),
        breaker_failures=breaker.number(
            "failures", base.breaker_failures, positive=True, integer=True
        ),
        breaker_error_rate=float(
            breaker.number("error_rate", base.breaker_error_rate, positive=True, maximum=1)
        ),
        breaker_cooldown=float(
            breaker.number("cooldown", base.breaker_cooldown, positive=True, unit="seconds")
        ),
        breaker_max_cooldown=float(
            breaker.number("max_cooldown", base.breaker_max_cooldown, positive=True, unit="seconds")
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
    """A model's `price: {input_per_mtok, output_per_mtok, cache_read_per_mtok,
    cache_write_per_mtok, batch_factor}`, the last three optional."""
    given_as = entry.raw("price")
    if not isinstance(given_as, dict):  # one problem, not one per missing field as well
        entry.report(
            "must be a mapping of prices per million tokens, as {input_per_mtok: 0.15, "
            f"output_per_mtok: 0.6}}, got {kind_of(given_as)}",
            "price",
        )
        return None
    section = entry.section("price", PRICE_KEYS)
    given = (
        section.number("input_per_mtok", None, minimum=0.0, required=True),
        section.number("output_per_mtok", None, minimum=0.0, required=True),
    )
    read = section.number("cache_read_per_mtok", None, minimum=0.0)
    written = section.number("cache_write_per_mtok", None, minimum=0.0)
    batch_factor = section.number("batch_factor", 1.0, minimum=0.0, maximum=1.0)
    if given[0] is None or given[1] is None:
        return None
    return Price(
        input_per_mtok=float(given[0]),
        output_per_mtok=float(given[1]),
        cache_read_per_mtok=None if read is None else float(read),
        cache_write_per_mtok=None if written is None else float(written),
        batch_factor=float(batch_factor),
    )


PRICE_KEYS = frozenset(
    {
        "input_per_mtok",
        "output_per_mtok",
        "cache_read_per_mtok",
        "cache_write_per_mtok",
        "batch_factor",
    }
)


def cost_of(price: Price | None) -> float | None:
    """The router's relative cost of a model that has a price and no `cost` of its own."""
    return None if price is None else price.input_per_mtok + price.output_per_mtok


ROUTING, REGISTRY = "routing.yaml", "model_registry.yaml"
ROUTING_KEYS = frozenset(
    {
        "strategy",
        "default_group",
        "failover_order",
        "groups",
        "circuit_breaker",
        "health",
        "scoring",
        "classifier",
    }
)


def under_routing(doc: object, problems: Problems) -> object:
    """routing.yaml's settings written at its top, without `routing:` above them: one
    problem that says so (then read as meant), not one per key and each missing one."""
    if isinstance(doc, dict) and "routing" not in doc and ROUTING_KEYS.intersection(doc):
        found = ", ".join(sorted(ROUTING_KEYS.intersection(doc)))
        problems.add(ROUTING, "", f"its settings go under 'routing:' (found at the top: {found})")
        return {"routing": doc}
    return doc


def read_routing(doc: Section, models: Mapping[str, Model], directory: Path) -> Routing:
    if not doc.has("routing"):
        doc.report("is required", "routing")
    section = doc.section("routing", ROUTING_KEYS)
    strategy = section.choice("strategy", "failover", STRATEGIES)
    failover_order = section.str_list("failover_order")
    for i, name in enumerate(failover_order):
        if name not in models:
            hint = did_you_mean(name, models)
            section.report(f"unknown model {name!r}{hint}", f"failover_order[{i}]")
        elif name in failover_order[:i]:  # it would be tried, and blamed, twice
            section.report(f"{name!r} is listed twice", f"failover_order[{i}]")
    groups: dict[str, Group] = {}
    raw_groups = section.section("groups")
    if not section.has("groups"):
        section.report("is required", "groups")
    for group_name, value in raw_groups.items():
        path = raw_groups.child(group_name)
        group_strategy = None
        if isinstance(value, dict):
            entry = Section(ROUTING, path, value, doc.problems, frozenset({"models", "strategy"}))
            group_strategy = (
                entry.choice("strategy", strategy, STRATEGIES) if entry.has("strategy") else None
            )
            members = entry.str_list("models")
            path = entry.child("models")
        else:
            members = raw_groups.problems_str_list(value, path)
        for i, member in enumerate(members):
            if member not in models:
                hint = did_you_mean(member, models)
                doc.problems.add(ROUTING, f"{path}[{i}]", f"unknown model {member!r}{hint}")
            elif member in members[:i]:
                doc.problems.add(ROUTING, f"{path}[{i}]", f"{member!r} is listed twice")
        if not members and isinstance(value, (list, dict)):
            doc.problems.add(ROUTING, path, "a group needs at least one model")
        if group_name in models:
            doc.problems.add(
                ROUTING, path, f"{group_name!r} is also a model name; names must differ"
            )
        if (problem := name_problem(str(group_name))) is not None:
            doc.problems.add(ROUTING, path, problem)
        groups[group_name] = Group(name=group_name, models=members, strategy=group_strategy)
    default_group = section.string("default_group", required=True)
    if default_group is not None and default_group not in groups:
        hint = did_you_mean(default_group, groups)
        section.report(f"unknown group {default_group!r}{hint}", "default_group")
    classifier = read_classifier(section, directory)
    if classifier is not None or not section.has("classifier"):  # one that loaded
        # The shipped model's labels are LABELS: building it (a tenth of a second) only
        # to read them would cost every start, of every strategy.
        labels = LABELS if classifier is None else load_classifier(classifier).labels
        _known_tasks(doc.problems, models, (*labels, "embeddings"))
    return Routing(
        strategy=strategy,
        default_group=default_group or "",
        failover_order=failover_order,
        groups=MappingProxyType(groups),
        health=read_health(section),
        scoring=read_scoring(section),
        classifier=classifier,
    )


def _known_tasks(problems: Problems, models: Mapping[str, Model], tasks: Sequence[str]) -> None:
    """A specialization is a task the router's classifier can detect, or `embeddings`
    (an embedding model's, as the registry's comments list it): a misspelt one would
    never match, and the model lose its bonus without a word."""
    for model in models.values():
        for i, task in enumerate(model.specializations):
            if task not in tasks:
                problems.add(
                    REGISTRY,
                    f"models.{model.name}.specializations[{i}]",
                    f"unknown task {task!r}{did_you_mean(task, tasks)}; the router detects "
                    f"{', '.join(tasks)}",
                )
