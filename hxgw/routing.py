"""Which models may serve a request, and in what order they are tried.

A request names a group (header, body `model`, or the default) or pins one
registered model. The group's strategy orders its models; `failover_order`
adds last-resort models after them. Models whose mode does not fit the
endpoint are never candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

from hxgw.config import ClientKey, Config, Mode, Model
from hxgw.errors import BadRequest, Forbidden, ModelNotFound

GROUP_HEADER = "X-HX-Model-Group"


@dataclass(frozen=True, slots=True)
class Route:
    group: str | None
    pinned: bool
    candidates: tuple[Model, ...]


def resolve(
    config: Config,
    header_group: str | None,
    body_model: str | None,
    key: ClientKey,
    mode: Mode | None,
) -> Route:
    """Pick the group or pinned model for a request; raise a 4xx error when none fits."""
    groups = config.routing.groups
    if header_group is not None:
        if header_group not in groups:
            raise ModelNotFound(
                f"unknown model group {header_group!r} in {GROUP_HEADER}; "
                f"groups: {', '.join(sorted(groups))}",
                param=GROUP_HEADER,
            )
        return _group_route(config, header_group, key, mode)
    if body_model is not None:
        if body_model in groups:
            return _group_route(config, body_model, key, mode)
        model = config.models.get(body_model)
        if model is None:
            raise ModelNotFound(
                f"unknown model {body_model!r}: name a group ({', '.join(sorted(groups))}) "
                "or a model of the registry",
                param="model",
            )
        if key.groups is not None and not any(
            key.may_use(g.name) for g in groups.values() if model.name in g.models
        ):
            raise Forbidden(f"key {key.name!r} may not use model {model.name!r}", param="model")
        if mode is not None and not model.serves(mode):
            raise BadRequest(
                f"model {model.name!r} serves {model.mode} requests only", param="model"
            )
        return Route(group=None, pinned=True, candidates=(model,))
    return _group_route(config, config.routing.default_group, key, mode)


def _group_route(config: Config, group: str, key: ClientKey, mode: Mode | None) -> Route:
    if not key.may_use(group):
        raise Forbidden(f"key {key.name!r} may not use group {group!r}")
    models = config.models
    own = tuple(models[n] for n in config.routing.groups[group].models if _fits(models[n], mode))
    if not own:
        raise BadRequest(f"group {group!r} has no model for this endpoint ({mode})")
    fallbacks = tuple(
        models[n]
        for n in config.routing.failover_order
        if models[n] not in own and _fits(models[n], mode)
    )
    return Route(group=group, pinned=False, candidates=own + fallbacks)


def _fits(model: Model, mode: Mode | None) -> bool:
    return mode is None or model.serves(mode)
