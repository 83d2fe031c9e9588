"""Which models may serve a request, and in what order."""

from __future__ import annotations

from pathlib import Path

import pytest

from hxgw.config import ClientKey, Config, KeyLimits, Team, load_config
from hxgw.errors import BadRequest, Forbidden, ModelNotFound
from hxgw.routing.routes import Routes, may_use_upstream
from tests.fixtures import DEFAULT_MODELS, write_config

ANY_KEY = ClientKey(name="any", digest=b"x" * 32)


def _in_team_of(*groups: str) -> ClientKey:
    """A key of no groups of its own, in a team kept to `groups`."""
    team = Team(name="t", limits=KeyLimits(), groups=frozenset(groups))
    return ClientKey(name="teamed", digest=b"z" * 32, team=team)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    routing = {"routing": {"default_group": "chat", "failover_order": ["gamma", "alpha"],
                           "groups": {"chat": ["alpha", "beta"], "solo": ["gamma"],
                                      "emb": ["embed"]}}}
    models = [*DEFAULT_MODELS, {"name": "delta", "tier_score": 0.1, "specializations": []}]
    write_config(tmp_path, "http://127.0.0.1:1", routing=routing, models=models)
    return load_config(tmp_path, {"MASTER_KEY": "k"})


def _names(config: Config, header: str | None = None, model: str | None = None,
           key: ClientKey = ANY_KEY, mode: str | None = "chat") -> list[str]:
    return [m.name for m in Routes(config).resolve(header, model, key, mode).candidates]  # type: ignore[arg-type]


def test_the_default_group_is_used_when_nothing_is_named(config: Config):
    route = Routes(config).resolve(None, None, ANY_KEY, "chat")
    assert route.group == "chat" and not route.pinned


def test_failover_order_models_follow_the_group_without_repeats(config: Config):
    assert _names(config) == ["alpha", "beta", "gamma"]


def test_the_header_wins_over_the_body_model(config: Config):
    assert _names(config, header="solo", model="chat") == ["gamma", "alpha"]


def test_the_header_wins_over_a_body_model_naming_a_registered_model(config: Config):
    route = Routes(config).resolve("solo", "beta", ANY_KEY, "chat")
    assert route.group == "solo" and not route.pinned


def test_a_body_model_naming_a_group_selects_it(config: Config):
    assert Routes(config).resolve(None, "solo", ANY_KEY, "chat").group == "solo"


def test_a_body_model_naming_a_model_pins_only_that_model(config: Config):
    route = Routes(config).resolve(None, "beta", ANY_KEY, "chat")
    assert route.pinned and route.group is None
    assert [m.name for m in route.candidates] == ["beta"]


def test_models_of_another_mode_are_never_candidates(config: Config):
    assert _names(config, header="emb", mode="embedding") == ["embed"]


def test_a_group_with_no_model_for_the_endpoint_is_a_bad_request(config: Config):
    with pytest.raises(BadRequest, match="no model for this endpoint"):
        Routes(config).resolve("emb", None, ANY_KEY, "chat")


def test_no_model_for_the_endpoint_in_the_default_group_names_the_groups_that_have_one(
    config: Config,
):
    with pytest.raises(BadRequest) as refused:
        Routes(config).resolve(None, None, ANY_KEY, "embedding")
    assert str(refused.value) == (
        "no model named, and the default group 'chat' has no model for this endpoint "
        "(embedding); name one that has: emb")
    assert refused.value.param == "model"


def test_an_endpoint_no_group_serves_is_said_to_need_a_model_of_its_mode(config: Config):
    with pytest.raises(BadRequest) as refused:
        Routes(config).resolve("chat", None, ANY_KEY, "rerank")
    assert str(refused.value) == (
        "group 'chat' has no model for this endpoint (rerank); no group has one "
        "(a model of mode rerank)")


def test_a_pinned_model_of_another_mode_is_a_bad_request(config: Config):
    with pytest.raises(BadRequest, match="serves embedding requests only"):
        Routes(config).resolve(None, "embed", ANY_KEY, "chat")


def test_an_unrestricted_key_may_pin_a_model_that_is_in_no_group(config: Config):
    assert Routes(config).resolve(None, "delta", ANY_KEY, "chat").candidates[0].name == "delta"


def test_unknown_group_and_model_are_not_found(config: Config):
    with pytest.raises(ModelNotFound, match="unknown model group 'x'"):
        Routes(config).resolve("x", None, ANY_KEY, "chat")
    with pytest.raises(ModelNotFound, match="unknown model 'y'"):
        Routes(config).resolve(None, "y", ANY_KEY, "chat")


def test_a_model_or_group_that_looks_like_a_typo_gets_a_hint(config: Config):
    with pytest.raises(ModelNotFound, match=r"unknown model 'delat' \(did you mean 'delta'\?\)"):
        Routes(config).resolve(None, "delat", ANY_KEY, "chat")


def test_a_limited_key_may_not_use_other_groups_or_their_models(config: Config):
    limited = ClientKey(name="l", digest=b"y" * 32, groups=frozenset({"solo"}))
    assert Routes(config).resolve(None, "solo", limited, "chat").group == "solo"
    assert Routes(config).resolve(None, "gamma", limited, "chat").pinned
    with pytest.raises(Forbidden):
        Routes(config).resolve(None, None, limited, "chat")
    with pytest.raises(Forbidden):
        Routes(config).resolve(None, "alpha", limited, "chat")


def test_a_limited_key_fails_over_only_to_models_of_its_groups(config: Config):
    limited = ClientKey(name="l", digest=b"y" * 32, groups=frozenset({"chat"}))
    assert _names(config, key=limited) == ["alpha", "beta"]  # gamma is solo's alone


def test_a_key_kept_to_groups_by_its_team_may_not_use_a_model_of_other_groups(config: Config):
    with pytest.raises(Forbidden, match="may not use model 'alpha'"):
        Routes(config).resolve(None, "alpha", _in_team_of("solo"), "chat")


def test_a_key_whose_own_groups_and_its_team_s_share_none_is_told_so(config: Config):
    team = Team(name="t", limits=KeyLimits(), groups=frozenset({"solo"}))
    key = ClientKey(name="k", digest=b"z" * 32, groups=frozenset({"chat"}), team=team)
    with pytest.raises(Forbidden, match=r"\(its groups: none: its own and its team's share none\)"):
        Routes(config).resolve(None, "chat", key, "chat")


def test_a_key_kept_to_groups_by_its_team_fails_over_only_to_models_of_them(config: Config):
    assert _names(config, key=_in_team_of("chat")) == ["alpha", "beta"]  # gamma is solo's


def _on_two_upstreams(tmp_path: Path) -> Config:
    """Group a's alpha on the upstream `default`, group b's beta on `other`."""
    models = [{**DEFAULT_MODELS[0]}, {**DEFAULT_MODELS[1], "upstream": "other"}]
    routing = {"routing": {"default_group": "a", "groups": {"a": ["alpha"], "b": ["beta"]}}}
    gateway = {"upstreams": {"default": {"url": "http://127.0.0.1:1"},
                             "other": {"url": "http://127.0.0.1:2"}}}
    write_config(tmp_path, "http://127.0.0.1:1", models=models, routing=routing, gateway=gateway)
    return load_config(tmp_path, {"MASTER_KEY": "k"})


def test_a_limited_key_reaches_only_the_upstreams_of_its_groups_models(tmp_path: Path):
    # Their files and batches name no model: the upstream they are on is what a key reaches.
    config = _on_two_upstreams(tmp_path)
    limited = ClientKey(name="l", digest=b"y" * 32, groups=frozenset({"a"}))
    assert may_use_upstream(config, limited, "default")
    assert not may_use_upstream(config, limited, "other")


def test_a_key_kept_to_groups_by_its_team_reaches_only_the_upstreams_of_their_models(
    tmp_path: Path,
):
    config = _on_two_upstreams(tmp_path)
    assert may_use_upstream(config, _in_team_of("a"), "default")
    assert not may_use_upstream(config, _in_team_of("a"), "other")


def test_a_new_config_snapshot_gets_its_own_route(config: Config, tmp_path: Path):
    assert _names(config) == ["alpha", "beta", "gamma"]
    routing = {"routing": {"default_group": "chat", "failover_order": [],
                           "groups": {"chat": ["beta"]}}}
    write_config(tmp_path, "http://127.0.0.1:1", routing=routing)
    reloaded = load_config(tmp_path, {"MASTER_KEY": "k"})
    assert _names(reloaded) == ["beta"]
    assert _names(config) == ["alpha", "beta", "gamma"]


def test_a_group_route_is_built_with_the_config_not_per_request(config: Config):
    routes = Routes(config)
    first = routes.resolve(None, None, ANY_KEY, "chat")
    assert routes.resolve(None, None, ANY_KEY, "chat") is first


def test_a_built_route_still_checks_the_key(config: Config):
    routes = Routes(config)
    routes.resolve("solo", None, ANY_KEY, "chat")
    limited = ClientKey(name="limited", digest=b"y" * 32, groups=frozenset({"chat"}))
    with pytest.raises(Forbidden):
        routes.resolve("solo", None, limited, "chat")
