"""Teams in the keys file: keys that share limits, each key naming its team."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hxgw.config import KeyLimits, Team, load_config
from hxgw.errors import ConfigError
from tests.fixtures import write_config

ENV = {"MASTER_KEY": "sk-unit-test-key"}


def _keys_file(tmp_path: Path, teams: Any, *keys: dict[str, object]) -> Path:
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"auth": {"keys_file": "keys.yaml"}})
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump({"teams": teams, "keys": list(keys)}))
    return tmp_path


def test_a_key_that_names_a_team_carries_the_team_s_limits(tmp_path: Path):
    teams = [{"name": "search", "rpm": 100, "budget": 50, "budget_period": "30d"}]
    config = load_config(_keys_file(tmp_path, teams, {"name": "a", "key": "sk-a-1", "team": "search",
                                                      "rpm": 10}), ENV)
    (key,) = [k for k in config.keys if k.name == "a"]
    team = Team(name="search", limits=KeyLimits(rpm=100, budget=50.0, budget_period_s=30 * 86_400))
    assert (key.team, key.limits) == (team, KeyLimits(rpm=10))


def test_a_key_that_names_no_team_is_in_none(tmp_path: Path):
    config = load_config(_keys_file(tmp_path, [{"name": "search", "rpm": 100}],
                                    {"name": "a", "key": "sk-a-1"}), ENV)
    assert all(key.team is None for key in config.keys)


@pytest.mark.parametrize(
    ("teams", "key", "said"),
    [
        ([{"name": "search", "rpm": 1}], {"team": "serch"}, "keys[0].team: unknown team 'serch'"),
        ([], {"team": "search"}, "keys[0].team: unknown team 'search' (the file's teams: none"),
        ([{"name": "search"}], {}, "teams[0]: sets nothing: give groups or one of"),
        ([{"name": "search", "budget_period": "7d"}], {}, "teams[0]: sets nothing"),
        ([{"name": "a b", "rpm": 1}], {}, "teams[0].name: 'a b': a name goes"),
        ([{"rpm": 1}], {}, "teams[0].name: "),
        ([{"name": "t", "rpm": 0}], {}, "teams[0].rpm: "),
        ([{"name": "t", "groups": ["chta"]}], {}, "teams[0].groups[0]: unknown group 'chta'"),
        ([{"name": "t", "groups": []}], {}, "teams[0].groups: names no group"),
        ([{"name": "t", "groups": ["solo"]}], {"team": "t", "groups": ["chat"]},
         "keys[0].groups: shares no group with its team 't' (solo)"),
        ({"name": "t"}, {}, "teams: must be a list of teams"),
        ([{"name": "none", "rpm": 1}], {}, "teams[0].name: 'none' is no team's name"),
        ([{"name": "t", "rpm": -1}], {"team": "t"}, "teams[0].rpm: "),  # once, not for its key
        # A team refused for its name is said once, not again for what it sets.
        ([{"name": "a b"}], {}, "teams[0].name: 'a b': a name goes"),
        ([{"name": "t", "rpm": 1}, {"name": "t"}], {}, "teams[1].name: 't' is another team's"),
    ],
)
def test_a_bad_team_is_reported_with_its_path(
    tmp_path: Path, teams: Any, key: dict[str, object], said: str
):
    with pytest.raises(ConfigError) as caught:
        load_config(_keys_file(tmp_path, teams, {"name": "a", "key": "sk-a-1", **key}), ENV)
    problems = str(caught.value).splitlines()
    assert len(problems) == 1 and said in problems[0], problems


def test_two_teams_with_one_name_are_refused(tmp_path: Path):
    teams = [{"name": "search", "rpm": 1}, {"name": "search", "rpm": 2}]
    with pytest.raises(ConfigError, match=r"teams\[1\].name: 'search' is another team's"):
        load_config(_keys_file(tmp_path, teams), ENV)


def test_a_team_may_keep_its_keys_to_groups_and_limit_nothing(tmp_path: Path):
    config = load_config(_keys_file(tmp_path, [{"name": "search", "groups": ["chat"]}],
                                    {"name": "a", "key": "sk-a-1", "team": "search"}), ENV)
    (key,) = [k for k in config.keys if k.name == "a"]
    assert key.team == Team(name="search", limits=KeyLimits(), groups=frozenset({"chat"}))
    assert (key.groups, key.reach) == (None, frozenset({"chat"}))


def test_a_key_reaches_only_the_groups_both_it_and_its_team_name(tmp_path: Path):
    teams = [{"name": "search", "groups": ["chat", "solo"]}]
    config = load_config(_keys_file(tmp_path, teams, {"name": "a", "key": "sk-a-1", "team": "search",
                                                      "groups": ["solo", "emb"]}), ENV)
    (key,) = [k for k in config.keys if k.name == "a"]
    assert key.reach == frozenset({"solo"})
    assert key.may_use("solo") and not key.may_use("emb") and not key.may_use("chat")


def test_a_key_with_groups_of_its_own_in_a_team_of_limits_alone_reaches_its_own_groups(
    tmp_path: Path,
):
    config = load_config(_keys_file(tmp_path, [{"name": "search", "rpm": 100}],
                                    {"name": "a", "key": "sk-a-1", "team": "search",
                                     "groups": ["solo"]}), ENV)
    (key,) = [k for k in config.keys if k.name == "a"]
    assert key.reach == frozenset({"solo"})
    assert key.may_use("solo") and not key.may_use("chat")
