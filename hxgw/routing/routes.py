"""Which models may serve a request: its group or pinned model, and the key's right to it.

A request names a group (header, body `model`, or the default) or pins one
registered model. Models whose mode does not fit the endpoint are never
candidates. A group's route depends only on the config, the group and the mode,
so `Routes` builds every one when a config is loaded, not per request.
"""

from __future__ import annotations

from dataclasses import replace

from hxgw.config import MODES, ClientKey, Config, Mode, Model
from hxgw.errors import BadRequest, Forbidden, ModelNotFound, did_you_mean
from hxgw.memo import Memo
from hxgw.routing.decision import Decision, Route

GROUP_HEADER = "X-HX-Model-Group"


class Routes:
    """The routes of one config: each group's for each mode (None: endpoints whose model
    may be of any mode), built with the config's snapshot."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._groups: dict[tuple[str, Mode | None], Route | None] = {
            (group, mode): _group_route(config, group, mode)
            for group in config.routing.groups
            for mode in (*MODES, None)
        }
        """None: the group has no model for that mode."""
        self._for_groups: Memo[tuple[str, Mode | None, frozenset[str]], Route] = Memo(
            self._route_within, 4096
        )
        """The routes of keys limited to some groups: failover_order's models are theirs
        only where one of those groups holds them."""

    def resolve(
        self,
        header_group: str | None,
        body_model: str | None,
        key: ClientKey,
        mode: Mode | None,
    ) -> Route:
        """Pick the group or pinned model for a request; raise a 4xx error when none fits."""
        config = self.config
        groups = config.routing.groups
        if header_group is not None:
            if header_group not in groups:
                hint = did_you_mean(header_group, groups)
                raise ModelNotFound(
                    f"unknown model group {header_group!r}{hint} in {GROUP_HEADER}; "
                    f"groups: {', '.join(sorted(groups))}",
                    param=GROUP_HEADER,
                )
            return self._group(header_group, key, mode, GROUP_HEADER)
        if body_model is not None:
            if body_model in groups:
                return self._group(body_model, key, mode, "model")
            model = config.models.get(body_model)
            if model is None:
                hint = did_you_mean(body_model, [*groups, *config.models])
                raise ModelNotFound(
                    f"unknown model {body_model!r}{hint}: name a group "
                    f"({', '.join(sorted(groups))}) or a model of the registry",
                    param="model",
                )
            if not may_use_model(config, key, model):
                raise Forbidden(f"key {key.name!r} may not use model {model.name!r}", param="model")
            if mode is not None and not model.serves(mode):
                raise BadRequest(
                    f"model {model.name!r} serves {model.mode} requests only", param="model"
                )
            return Route(group=None, pinned=True, candidates=(model,))
        return self._group(config.routing.default_group, key, mode, None)

    def _group(self, group: str, key: ClientKey, mode: Mode | None, named_in: str | None) -> Route:
        """`named_in`: the header or body field that named the group; None for the default."""
        if not key.may_use(group):
            its = ", ".join(sorted(key.reach or ())) or "none: its own and its team's share none"
            # With no model named, the group is routing.default_group, which its caller
            # never wrote: say so, or the name comes from nowhere.
            default = "" if named_in else "; no model named, so the default group: name one"
            raise Forbidden(
                f"key {key.name!r} may not use group {group!r} (its groups: {its}{default})"
            )
        route = self._groups[group, mode]
        if route is None:
            serving = [g for g in self.config.routing.groups if self._groups[g, mode] is not None]
            what = (
                f"group {group!r}"
                if named_in
                else f"no model named, and the default group {group!r}"
            )
            raise BadRequest(
                f"{what} has no model for this endpoint ({mode}); "
                + (
                    f"name one that has: {', '.join(serving)}"
                    if serving
                    else f"no group has one (a model of mode {mode})"
                ),
                param=named_in or "model",
            )
        if key.reach is not None and route.own < len(route.candidates):
            return self._for_groups[group, mode, key.reach]
        return route

    def _route_within(self, which: tuple[str, Mode | None, frozenset[str]]) -> Route:
        group, mode, groups = which
        groups_models = self.config.routing.groups
        reach = {m for g in groups if g in groups_models for m in groups_models[g].models}
        route = _group_route(self.config, group, mode, reach)
        assert route is not None  # the group's own models are the unlimited route's
        return route


def may_use_model(config: Config, key: ClientKey, model: Model) -> bool:
    """A key limited to some groups may use the models of those groups."""
    return key.reach is None or any(
        key.may_use(g.name) for g in config.routing.groups.values() if model.name in g.models
    )


def may_use_upstream(config: Config, key: ClientKey, upstream: str) -> bool:
    """A key limited to some groups may reach the upstreams their models are on (for the
    files and batches held there, which name no model)."""
    return key.reach is None or any(
        key.may_use(g.name) and any(config.models[m].upstream == upstream for m in g.models)
        for g in config.routing.groups.values()
    )


def _group_route(
    config: Config, group: str, mode: Mode | None, reach: set[str] | None = None
) -> Route | None:
    """`reach`: the models failover_order may add (None: all of them)."""
    own = _serving(config, config.routing.groups[group].models, mode)
    if not own:
        return None
    order = config.routing.failover_order
    if reach is not None:
        order = tuple([name for name in order if name in reach])
    last_resort = _serving(config, order, mode)
    candidates = own + tuple([m for m in last_resort if m not in own])
    turns = f"{group} {mode or 'any'}"
    route = Route(
        group=group,
        pinned=False,
        candidates=candidates,
        own=len(own),
        turns=turns,
        classified=mode != "embedding",
    )
    if config.routing.strategy_of(group) == "failover" and not route.limited:
        # It can only come out one way while every candidate is healthy: decided now.
        fixed = Decision("failover", candidates)
        fixed = fixed._replace(route_header=fixed.header())
        route = replace(route, fixed=fixed)
    return route


def _serving(config: Config, names: tuple[str, ...], mode: Mode | None) -> tuple[Model, ...]:
    """The named models that serve the endpoint's mode, in order."""
    models = config.models
    return tuple([m for m in map(models.__getitem__, names) if mode is None or m.serves(mode)])
