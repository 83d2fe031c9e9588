"""What a reload changed, for the operator who sent it: the models, groups, upstreams,
keys and teams added, removed or changed (by name), and the other settings changed (by their place in
the files). Names only: a key's or an upstream's secret is compared, never said."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from hxgw.config.gateway import GATEWAY
from hxgw.config.routing_settings import REGISTRY, ROUTING
from hxgw.config.schema import Config

_Read = Callable[[Config], object]

# The settings outside the named things, each as the files spell its place, with its file.
_SETTINGS: tuple[tuple[str, str, _Read], ...] = (
    ("listen", GATEWAY, lambda c: c.listen),
    ("timeouts", GATEWAY, lambda c: c.timeouts),
    ("limits", GATEWAY, lambda c: c.limits),
    ("limits_store", GATEWAY, lambda c: c.limits_store),
    ("auth", GATEWAY, lambda c: (c.bad_keys, c.per_user)),
    ("tls", GATEWAY, lambda c: c.tls),
    ("logging", GATEWAY, lambda c: c.logging),
    ("readiness", GATEWAY, lambda c: c.readiness),
    ("metrics", GATEWAY, lambda c: c.metrics),
    ("cors", GATEWAY, lambda c: c.cors_origins),
    ("store", GATEWAY, lambda c: c.store),
    ("workers", GATEWAY, lambda c: c.workers),
    ("shutdown", GATEWAY, lambda c: c.drain_timeout),
    ("routing.strategy", ROUTING, lambda c: c.routing.strategy),
    ("routing.default_group", ROUTING, lambda c: c.routing.default_group),
    ("routing.failover_order", ROUTING, lambda c: c.routing.failover_order),
    ("routing.health", ROUTING, lambda c: _health(c)[0]),
    ("routing.circuit_breaker", ROUTING, lambda c: _health(c)[1]),
    ("routing.scoring", ROUTING, lambda c: c.routing.scoring),
    ("routing.classifier", ROUTING, lambda c: c.routing.classifier),
)


def _health(config: Config) -> tuple[dict[str, object], dict[str, object]]:
    """routing.health's settings and routing.circuit_breaker's (the `breaker_` ones), from
    the one dataclass that holds both: a setting added there is compared without a word here."""
    settings = dataclasses.asdict(config.routing.health)
    breaker = {name: value for name, value in settings.items() if name.startswith("breaker_")}
    return {name: v for name, v in settings.items() if name not in breaker}, breaker


@dataclass(slots=True)
class Changes:
    fields: dict[str, str] = field(default_factory=dict)
    """For the log line: `models_removed=llm02`, `settings_changed=timeouts,cors`, ..."""
    files: list[str] = field(default_factory=list)
    """The files whose content the changes came from, in the order the operator reads them."""
    waiting: list[str] = field(default_factory=list)
    """The settings that differ from what the process runs with and wait for a restart
    (hxgw.config.warnings.log_restart_only_changes): said at every reload until then."""

    def summary(self) -> str:
        """For STATUS= and /status: short whatever the change."""
        said = f"changed {', '.join(self.files)}" if self.files else "nothing changed"
        return f"{said}; waiting for a restart: {', '.join(self.waiting)}" if self.waiting else said

    def log_fields(self) -> dict[str, str]:
        waiting = {"restart_needed": ",".join(self.waiting)} if self.waiting else {}
        return (self.fields or {"changed": "none"}) | waiting


def changes(old: Config, new: Config) -> Changes:
    found = Changes()
    keys_file = _keys_file(new) or _keys_file(old) or "the keys file"
    named: tuple[tuple[str, str, Mapping[str, object], Mapping[str, object]], ...] = (
        ("upstreams", GATEWAY, old.upstreams, new.upstreams),
        ("models", REGISTRY, old.models, new.models),
        ("groups", ROUTING, old.routing.groups, new.routing.groups),
        ("keys", keys_file, {k.name: k for k in old.keys}, {k.name: k for k in new.keys}),
        ("teams", keys_file, {t.name: t for t in old.teams}, {t.name: t for t in new.teams}),
    )
    for kind, file, before, after in named:
        for what, names in _differences(before, after).items():
            if names:
                found.fields[f"{kind}_{what}"] = ",".join(names)
                _note(found.files, file)
    settings = [(place, file) for place, file, read in _SETTINGS if read(old) != read(new)]
    if settings:
        found.fields["settings_changed"] = ",".join(place for place, _ in settings)
        for _, file in settings:
            _note(found.files, file)
    order = (GATEWAY, ROUTING, REGISTRY)
    found.files.sort(key=lambda f: order.index(f) if f in order else len(order))
    return found


def _differences(before: Mapping[str, object], after: Mapping[str, object]) -> dict[str, list[str]]:
    return {
        "added": [name for name in after if name not in before],
        "removed": [name for name in before if name not in after],
        "changed": [name for name in after if name in before and before[name] != after[name]],
    }


def _note(files: list[str], file: str) -> None:
    if file not in files:
        files.append(file)


def _keys_file(config: Config) -> str | None:
    extra = [f.name for f in config.files if f.name not in (GATEWAY, ROUTING, REGISTRY)]
    return extra[0] if extra else None


def repointed(old: Config, new: Config) -> list[str]:
    """The models both configs have that the new one sends elsewhere: to another model
    id upstream, or another upstream URL."""

    def target(config: Config, name: str) -> tuple[str, str]:
        model = config.models[name]
        return model.upstream_model, config.upstreams[model.upstream].url

    both = [name for name in new.models if name in old.models]
    return [name for name in both if target(old, name) != target(new, name)]
