"""Reading and validating the config directory into a `Config` snapshot.

Everything wrong is reported at once, one line per problem, each naming its
file and key path; a snapshot is returned only when there is no problem.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from hxgw.config.client_keys import read_client_keys
from hxgw.config.gateway import (
    GATEWAY,
    read_bad_key_policy,
    read_cors,
    read_drain_timeout,
    read_limits,
    read_listen,
    read_logging,
    read_metrics_access,
    read_readiness,
    read_timeouts,
    read_tls,
    read_workers,
)
from hxgw.config.limits_store import read_limits_store
from hxgw.config.reader import Problems, Section, kind_of, read_yaml
from hxgw.config.routing_settings import (
    cost_of,
    read_classifier,
    read_health,
    read_price,
    read_scoring,
)
from hxgw.config.schema import (
    DEFAULT_UPSTREAM,
    MODES,
    STRATEGIES,
    Config,
    Group,
    Model,
    Routing,
)
from hxgw.config.store import read_store
from hxgw.config.transforms import Transform, parse_transforms
from hxgw.config.upstreams import read_upstreams
from hxgw.errors import ConfigError, did_you_mean

ROUTING, REGISTRY = "routing.yaml", "model_registry.yaml"


def load_config(
    config_dir: str | os.PathLike[str], env: Mapping[str, str], *, serving: bool = True
) -> Config:
    """Load and validate every file of `config_dir`; raise ConfigError listing all problems.

    A gateway that serves needs a client key; the commands that only read the config
    (`check-config`, `route`) pass `serving=False` and get a config with no keys."""
    directory = Path(config_dir)
    if not directory.is_dir():
        # One problem, not one per file and a missing key blamed on gateway.yaml.
        what = "is a file, not a" if directory.exists() else "no such"
        raise ConfigError(
            f"{directory}: {what} config directory (--config-dir, or HX_CONFIG_DIR; "
            "etc/hxgw of the checkout is the example)"
        )
    problems = Problems()
    files: list[Path] = []
    gateway = read_yaml(directory / GATEWAY, problems, files, required=False)
    before = len(problems.messages)
    routing_doc = _under_routing(
        read_yaml(directory / ROUTING, problems, files, required=True), problems
    )
    routing_problems = problems if len(problems.messages) == before else Problems()
    before = len(problems.messages)
    registry_doc = read_yaml(directory / REGISTRY, problems, files, required=True)
    if len(problems.messages) != before:
        # Without a registry every model name would look unknown: say only what is wrong.
        routing_problems = Problems()
        registry_problems = Problems()
    else:
        registry_problems = problems

    top = Section(GATEWAY, "", gateway, problems, frozenset(_GATEWAY_KEYS))
    before = len(problems.messages)
    models = _models(Section(REGISTRY, "", registry_doc, registry_problems, frozenset({"models"})))
    if not models and len(problems.messages) > before:
        routing_problems = Problems()  # no models read: each name routing uses would be unknown
    upstreams = read_upstreams(top, env)
    for model in models.values():
        if model.upstream not in upstreams:
            # Named, or the default one (which gateway.yaml need not list) left out.
            named = "" if model.upstream != DEFAULT_UPSTREAM else " (where a model names none)"
            problems.add(
                REGISTRY,
                f"models.{model.name}.upstream",
                f"unknown upstream {model.upstream!r}{named}; {GATEWAY} has"
                f" {', '.join(upstreams) or 'none'}",
            )
    routing = _routing(
        Section(ROUTING, "", routing_doc, routing_problems, frozenset({"routing"})),
        models,
        directory,
    )
    keys = read_client_keys(top, directory, env, problems, files, required=serving)
    listen, timeouts, limits = read_listen(top, env), read_timeouts(top), read_limits(top)
    logging, drain_timeout = read_logging(top, env), read_drain_timeout(top)
    metrics = read_metrics_access(top, env)
    bad_keys, tls = read_bad_key_policy(top), read_tls(top, directory)
    workers, limits_store = read_workers(top.raw("workers", 1), top), read_limits_store(top, env)
    readiness, store, cors = read_readiness(top), read_store(top, env), read_cors(top)
    if problems.messages:
        raise ConfigError("\n".join(problems.messages))
    return Config(
        config_dir=directory,
        listen=listen,
        upstreams=upstreams,
        timeouts=timeouts,
        limits=limits,
        keys=keys,
        logging=logging,
        drain_timeout=drain_timeout,
        metrics=metrics,
        readiness=readiness,
        bad_keys=bad_keys,
        tls=tls,
        workers=workers,
        store=store,
        routing=routing,
        models=models,
        files=tuple(files),
        limits_store=limits_store,
        cors_origins=cors,
    )


_GATEWAY_KEYS = (
    "listen",
    "upstreams",
    "timeouts",
    "limits",
    "limits_store",
    "auth",
    "logging",
    "shutdown",
    "metrics",
    "readiness",
    "tls",
    "workers",
    "store",
    "cors",
)


def _models(doc: Section) -> Mapping[str, Model]:
    raw = doc.raw("models")
    if not doc.has("models"):
        doc.report("is required", "models")
        raw = []
    if not isinstance(raw, list):
        doc.report(f"must be a list of models, got {kind_of(raw)}", "models")
        raw = []
    models: dict[str, Model] = {}
    allowed = frozenset(
        {
            "name",
            "tier_score",
            "specializations",
            "upstream_model",
            "upstream",
            "mode",
            "transforms",
            "weight",
            "cost",
            "max_context",
            "price",
        }
    )
    for i, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        path = f"models.{name}" if isinstance(name, str) and name else f"models[{i}]"
        entry = Section(REGISTRY, path, item, doc.problems, allowed)
        name = entry.string("name", required=True)
        if name is None:
            continue
        if name in models:
            entry.report(f"duplicate model name {name!r}", "name")
            continue
        mode = entry.raw("mode")
        if mode is not None and mode not in MODES:
            entry.report(f"must be one of {', '.join(MODES)}, got {mode!r}", "mode")
            mode = None
        transforms: tuple[Transform, ...] = ()
        if entry.has("transforms"):
            transforms = parse_transforms(
                entry.raw("transforms"), REGISTRY, entry.child("transforms"), doc.problems
            )
        price = read_price(entry) if entry.has("price") else None
        models[name] = Model(
            name=name,
            tier_score=float(entry.number("tier_score", 0.5, minimum=0.0, maximum=1.0)),
            specializations=entry.str_list("specializations"),
            upstream_model=entry.string("upstream_model", name),
            upstream=entry.string("upstream", DEFAULT_UPSTREAM),
            mode=mode,
            transforms=transforms,
            weight=float(entry.number("weight", 1.0, positive=True)),
            cost=entry.number("cost", None, minimum=0.0) if entry.has("cost") else cost_of(price),
            max_context=entry.number("max_context", None, positive=True, integer=True),
            price=price,
        )
    return MappingProxyType(models)


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


def _under_routing(doc: object, problems: Problems) -> object:
    """routing.yaml's settings written at its top, without `routing:` above them: one
    problem that says so (then read as meant), not one per key and each missing one."""
    if isinstance(doc, dict) and "routing" not in doc and ROUTING_KEYS.intersection(doc):
        found = ", ".join(sorted(ROUTING_KEYS.intersection(doc)))
        problems.add(ROUTING, "", f"its settings go under 'routing:' (found at the top: {found})")
        return {"routing": doc}
    return doc


def _routing(doc: Section, models: Mapping[str, Model], directory: Path) -> Routing:
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
        groups[group_name] = Group(name=group_name, models=members, strategy=group_strategy)
    default_group = section.string("default_group", required=True)
    if default_group is not None and default_group not in groups:
        hint = did_you_mean(default_group, groups)
        section.report(f"unknown group {default_group!r}{hint}", "default_group")
    return Routing(
        strategy=strategy,
        default_group=default_group or "",
        failover_order=failover_order,
        groups=MappingProxyType(groups),
        health=read_health(section),
        scoring=read_scoring(section),
        classifier=read_classifier(section, directory),
    )
