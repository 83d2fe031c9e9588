"""Reading and validating the config directory into a `Config` snapshot.

Everything wrong is reported at once, one line per problem, each naming its
file and key path; a snapshot is returned only when there is no problem.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from hxgw.config.client_keys import read_client_keys, read_per_user_default
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
from hxgw.config.reader import Problems, Section, kind_of, name_problem
from hxgw.config.routing_settings import (
    REGISTRY,
    ROUTING,
    cost_of,
    read_price,
    read_routing,
    under_routing,
)
from hxgw.config.schema import (
    DEFAULT_UPSTREAM,
    MODES,
    Config,
    Model,
)
from hxgw.config.store import read_store
from hxgw.config.transforms import Transform, parse_transforms
from hxgw.config.upstreams import read_upstreams
from hxgw.config.yaml_file import read_yaml
from hxgw.errors import ConfigError


def load_config(
    config_dir: str | os.PathLike[str],
    env: Mapping[str, str],
    *,
    serving: bool = True,
    stored_keys: Callable[[], bool] = lambda: False,
) -> Config:
    """Load and validate every file of `config_dir`; raise ConfigError listing all problems.

    A gateway that serves needs a client key: MASTER_KEY, a keys file, or one made by
    `hxgw keys` (`stored_keys()`, asked only when there is no other). The commands that
    only read the config (`check-config`, `route`) pass `serving=False`."""
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
    routing_doc = under_routing(
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
    _check_upstreams(models, upstreams, problems)
    routing = read_routing(
        Section(ROUTING, "", routing_doc, routing_problems, frozenset({"routing"})),
        models,
        directory,
    )
    per_user = read_per_user_default(top)
    keys, teams = read_client_keys(
        top,
        directory,
        env,
        problems,
        files,
        stored_keys=stored_keys if serving else None,
        groups=routing.groups,
        per_user=per_user,
    )
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
        teams=teams,
        per_user=per_user,
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


def _check_upstreams(
    models: Mapping[str, Model], upstreams: Mapping[str, object], problems: Problems
) -> None:
    """Report each model whose upstream gateway.yaml does not have."""
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
            "max_output_tokens",
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
        if (problem := name_problem(name)) is not None:
            entry.report(problem, "name")
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
            max_output_tokens=entry.number(
                "max_output_tokens", None, positive=True, integer=True, maximum=10**9
            ),
            price=price,
        )
    return MappingProxyType(models)
