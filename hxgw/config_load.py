"""Reading and validating the config directory into a `Config` snapshot.

Everything wrong is reported at once, one line per problem, each naming its
file and key path; a snapshot is returned only when there is no problem.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from hxgw.classify import load_classifier
from hxgw.config import (
    DEFAULT_UPSTREAM,
    MODES,
    STRATEGIES,
    BadKeyPolicy,
    ClientKey,
    Config,
    Group,
    Limits,
    Listen,
    Logging,
    MetricsAccess,
    Model,
    ReadinessProbe,
    Routing,
    ScoringWeights,
    Timeouts,
    Tls,
    Upstream,
)
from hxgw.errors import ConfigError
from hxgw.health import HealthSettings
from hxgw.schema import Problems, Section, kind_of
from hxgw.transforms import Transform, parse_transforms

GATEWAY, ROUTING, REGISTRY = "gateway.yaml", "routing.yaml", "model_registry.yaml"
LOG_LEVELS = ("debug", "info", "warning", "error")


def load_config(config_dir: str | os.PathLike[str], env: Mapping[str, str]) -> Config:
    """Load and validate every file of `config_dir`; raise ConfigError listing all problems."""
    directory = Path(config_dir)
    problems = Problems()
    files: list[Path] = []
    gateway = _read_yaml(directory / GATEWAY, problems, files, required=False)
    before = len(problems.messages)
    routing_doc = _read_yaml(directory / ROUTING, problems, files, required=True)
    routing_problems = problems if len(problems.messages) == before else Problems()
    before = len(problems.messages)
    registry_doc = _read_yaml(directory / REGISTRY, problems, files, required=True)
    if len(problems.messages) != before:
        # Without a registry every model name would look unknown: say only what is wrong.
        routing_problems = Problems()
        registry_problems = Problems()
    else:
        registry_problems = problems

    top = Section(GATEWAY, "", gateway, problems, frozenset(_GATEWAY_KEYS))
    models = _models(Section(REGISTRY, "", registry_doc, registry_problems, frozenset({"models"})))
    upstreams = _upstreams(top, env)
    for model in models.values():
        if model.upstream not in upstreams:
            problems.add(
                REGISTRY, f"models.{model.name}.upstream", f"unknown upstream {model.upstream!r}"
            )
    routing = _routing(
        Section(ROUTING, "", routing_doc, routing_problems, frozenset({"routing"})),
        models,
        directory,
    )
    keys = _keys(top, directory, env, problems, files)
    listen, timeouts, limits = _listen(top, env), _timeouts(top), _limits(top)
    logging, drain_timeout = _logging(top, env), _drain_timeout(top)
    metrics = _metrics(top, env)
    bad_keys, tls = _bad_keys(top), _tls(top, directory)
    workers = _workers(top.raw("workers", 1), top)
    probe = top.section("readiness", frozenset({"interval", "stale_after"}))
    readiness = ReadinessProbe(
        interval=float(probe.number("interval", ReadinessProbe().interval, positive=True)),
        stale_after=float(probe.number("stale_after", ReadinessProbe().stale_after, positive=True)),
    )
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
        routing=routing,
        models=models,
        files=tuple(files),
    )


def _metrics(top: Section, env: Mapping[str, str]) -> MetricsAccess:
    section = top.section("metrics", frozenset({"auth", "key_env"}))
    key_env = section.string("key_env")
    key = env.get(key_env) if key_env else None
    if key_env and not key:
        section.report(f"names {key_env!r}, which is not set in the environment", "key_env")
    return MetricsAccess(
        auth=section.boolean("auth", True),
        key_digest=hashlib.sha256(key.encode()).digest() if key else None,
    )


def _workers(value: Any, top: Section) -> int | Literal["auto"]:
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 256:
        top.report(f"must be a number of processes (1-256) or auto, got {value!r}", "workers")
        return 1
    return value


def _drain_timeout(top: Section) -> float:
    section = top.section("shutdown", frozenset({"drain_timeout"}))
    return float(section.number("drain_timeout", 20.0, minimum=0, maximum=3600))


_GATEWAY_KEYS = (
    "listen",
    "upstreams",
    "timeouts",
    "limits",
    "auth",
    "logging",
    "shutdown",
    "metrics",
    "readiness",
    "tls",
    "workers",
)


def _read_yaml(path: Path, problems: Problems, files: list[Path], *, required: bool) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            problems.add(path.name, "", f"file not found in {path.parent}")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(path.name, "", f"cannot be read: {exc}")
        return None
    files.append(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        problems.add(path.name, where, f"invalid YAML: {reason}")
        return None


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
        models[name] = Model(
            name=name,
            tier_score=float(entry.number("tier_score", 0.5, minimum=0.0, maximum=1.0)),
            specializations=entry.str_list("specializations"),
            upstream_model=entry.string("upstream_model", name),
            upstream=entry.string("upstream", DEFAULT_UPSTREAM),
            mode=mode,
            transforms=transforms,
            weight=float(entry.number("weight", 1.0, positive=True)),
            cost=entry.number("cost", None, minimum=0.0),
            max_context=entry.number("max_context", None, positive=True, integer=True),
        )
    return MappingProxyType(models)


def _routing(doc: Section, models: Mapping[str, Model], directory: Path) -> Routing:
    if not doc.has("routing"):
        doc.report("is required", "routing")
    section = doc.section(
        "routing",
        frozenset(
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
        ),
    )
    strategy = section.choice("strategy", "failover", STRATEGIES)
    failover_order = section.str_list("failover_order")
    for i, name in enumerate(failover_order):
        if name not in models:
            section.report(f"unknown model {name!r}", f"failover_order[{i}]")
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
                doc.problems.add(ROUTING, f"{path}[{i}]", f"unknown model {member!r}")
        if not members and isinstance(value, list):
            doc.problems.add(ROUTING, path, "a group needs at least one model")
        if group_name in models:
            doc.problems.add(
                ROUTING, path, f"{group_name!r} is also a model name; names must differ"
            )
        groups[group_name] = Group(name=group_name, models=members, strategy=group_strategy)
    default_group = section.string("default_group", required=True)
    if default_group is not None and default_group not in groups:
        section.report(f"unknown group {default_group!r}", "default_group")
    return Routing(
        strategy=strategy,
        default_group=default_group or "",
        failover_order=failover_order,
        groups=MappingProxyType(groups),
        health=_health(section),
        scoring=_scoring(section),
        classifier=_classifier(section, directory),
    )


def _health(section: Section) -> HealthSettings:
    base = HealthSettings()
    breaker = section.section("circuit_breaker", frozenset({"failures", "cooldown"}))
    health = section.section("health", frozenset({"ewma_alpha", "error_window"}))
    return HealthSettings(
        ewma_alpha=float(health.number("ewma_alpha", base.ewma_alpha, positive=True, maximum=1)),
        error_window=health.number("error_window", base.error_window, positive=True, integer=True),
        breaker_failures=breaker.number(
            "failures", base.breaker_failures, positive=True, integer=True
        ),
        breaker_cooldown=float(breaker.number("cooldown", base.breaker_cooldown, positive=True)),
    )


def _scoring(section: Section) -> ScoringWeights:
    base = ScoringWeights()
    names = tuple(f.name for f in dataclasses.fields(ScoringWeights))
    weights = section.section("scoring", frozenset(names))
    return ScoringWeights(
        **{
            name: float(weights.number(name, getattr(base, name), minimum=0.0, maximum=100.0))
            for name in names
        }
    )


def _classifier(section: Section, directory: Path) -> Path | None:
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


def _upstreams(top: Section, env: Mapping[str, str]) -> Mapping[str, Upstream]:
    section = top.section("upstreams")
    raw: dict[str, Any] = dict(section.items()) or {DEFAULT_UPSTREAM: {}}
    default_key = env.get("HX_UPSTREAM_KEY") or env.get("MASTER_KEY") or None
    out: dict[str, Upstream] = {}
    for name, value in raw.items():
        entry = Section(
            GATEWAY, section.child(name), value, top.problems, frozenset({"url", "key_env"})
        )
        url = entry.string("url", "http://127.0.0.1:4000")
        if name == DEFAULT_UPSTREAM and env.get("HX_LITELLM_UPSTREAM"):
            url = env["HX_LITELLM_UPSTREAM"]
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            entry.report(f"must be an http(s) URL, got {url!r}", "url")
        key_env = entry.string("key_env")
        key = (
            env.get(key_env) or None
            if key_env
            else default_key
            if name == DEFAULT_UPSTREAM
            else None
        )
        out[name] = Upstream(name=name, url=url.rstrip("/"), key=key)
    return MappingProxyType(out)


def _keys(
    top: Section, directory: Path, env: Mapping[str, str], problems: Problems, files: list[Path]
) -> tuple[ClientKey, ...]:
    keys: list[ClientKey] = []
    master = env.get("MASTER_KEY")
    if master:
        keys.append(ClientKey(name="master", digest=hashlib.sha256(master.encode()).digest()))
    keys_file = top.section("auth", _AUTH_KEYS).string("keys_file")
    if keys_file:
        path = directory / keys_file
        doc = _read_yaml(path, problems, files, required=True)
        keys.extend(_key_entries(Section(path.name, "", doc, problems, frozenset({"keys"}))))
    if not keys and not keys_file:
        problems.add(GATEWAY, "auth", "no client key: set MASTER_KEY or auth.keys_file")
    return tuple(keys)


_AUTH_KEYS = frozenset({"keys_file", "max_bad_keys", "bad_key_window", "bad_key_lockout"})


def _bad_keys(top: Section) -> BadKeyPolicy:
    section = top.section("auth", _AUTH_KEYS)
    base = BadKeyPolicy()
    return BadKeyPolicy(
        max_failures=section.number("max_bad_keys", base.max_failures, positive=True, integer=True),
        window=float(section.number("bad_key_window", base.window, positive=True)),
        lockout=float(section.number("bad_key_lockout", base.lockout, minimum=0)),
    )


def _tls(top: Section, directory: Path) -> Tls | None:
    if not top.has("tls"):
        return None
    section = top.section("tls", frozenset({"cert", "key"}))
    cert, key = section.string("cert", required=True), section.string("key", required=True)
    if cert is None or key is None:
        return None
    tls = Tls(cert=directory / cert, key=directory / key)
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        section.report(f"cannot load the certificate and key: {exc}")
        return None
    return tls


def _key_entries(doc: Section) -> list[ClientKey]:
    raw = doc.raw("keys")
    if not isinstance(raw, list):
        doc.report(f"must be a list of keys, got {kind_of(raw)}", "keys")
        return []
    out: list[ClientKey] = []
    for i, item in enumerate(raw):
        entry = Section(
            doc.file,
            f"keys[{i}]",
            item,
            doc.problems,
            frozenset({"name", "key", "key_sha256", "groups"}),
        )
        name = entry.string("name", required=True)
        secret, hashed = entry.string("key"), entry.string("key_sha256")
        if (secret is None) == (hashed is None):
            entry.report("needs exactly one of key, key_sha256")
            continue
        try:
            digest = hashlib.sha256(secret.encode()).digest() if secret else bytes.fromhex(hashed)
        except ValueError:
            digest = b""
        if len(digest) != 32:
            entry.report("must be 64 hex digits", "key_sha256")
            continue
        groups = frozenset(entry.str_list("groups")) if entry.has("groups") else None
        if name:
            out.append(ClientKey(name=name, digest=digest, groups=groups))
    return out


def _listen(top: Section, env: Mapping[str, str]) -> Listen:
    section = top.section("listen", frozenset({"host", "port"}))
    host = env.get("HX_HOST") or section.string("host", "0.0.0.0")
    port = section.number("port", 4010, minimum=0, maximum=65535, integer=True)
    if env.get("HX_PORT"):
        try:
            port = int(env["HX_PORT"])
        except ValueError:
            top.problems.add(
                "environment", "HX_PORT", f"must be a port number, got {env['HX_PORT']!r}"
            )
    return Listen(host=host, port=port)


def _timeouts(top: Section) -> Timeouts:
    section = top.section("timeouts", frozenset({"connect", "first_byte", "idle", "total"}))
    base = Timeouts()
    return Timeouts(
        connect=float(section.number("connect", base.connect, positive=True)),
        first_byte=float(section.number("first_byte", base.first_byte, positive=True)),
        idle=float(section.number("idle", base.idle, positive=True)),
        total=float(section.number("total", base.total, positive=True)),
    )


def _limits(top: Section) -> Limits:
    section = top.section(
        "limits", frozenset({"max_body_bytes", "upstream_connections", "client_idle_timeout"})
    )
    base = Limits()
    return Limits(
        max_body_bytes=section.number(
            "max_body_bytes", base.max_body_bytes, positive=True, integer=True
        ),
        upstream_connections=section.number(
            "upstream_connections", base.upstream_connections, positive=True, integer=True
        ),
        client_idle_timeout=float(
            section.number("client_idle_timeout", base.client_idle_timeout, positive=True)
        ),
    )


def _logging(top: Section, env: Mapping[str, str]) -> Logging:
    section = top.section("logging", frozenset({"level", "format", "access_log"}))
    level = section.choice("level", "info", LOG_LEVELS)
    if env.get("LOG_LEVEL"):
        wanted = env["LOG_LEVEL"].lower()
        if wanted not in LOG_LEVELS:
            top.problems.add(
                "environment",
                "LOG_LEVEL",
                f"must be one of {', '.join(LOG_LEVELS)}, got {env['LOG_LEVEL']!r}",
            )
        else:
            level = wanted
    fmt = section.choice("format", "kv", ("kv", "json"))
    return Logging(
        level=level,
        format="json" if fmt == "json" else "kv",
        access_log=section.boolean("access_log", True),
    )
