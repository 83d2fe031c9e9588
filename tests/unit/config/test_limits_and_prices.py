"""Limits on file keys and prices on models: read, defaulted and checked at load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hxgw.config import load_config
from hxgw.config.schema import KeyLimits, Price
from hxgw.errors import ConfigError
from tests.fixtures import DEFAULT_MODELS, write_config

ENV = {"MASTER_KEY": "sk-unit-test-key"}


def _with_keys(tmp_path: Path, *entries: dict[str, object]) -> Path:
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"auth": {"keys_file": "keys.yaml"}})
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump({"keys": list(entries)}))
    return tmp_path


def test_a_file_key_carries_its_limits(tmp_path: Path):
    _with_keys(tmp_path, {"name": "app", "key": "sk-app-1", "rpm": 60, "tpm": 1000,
                          "max_parallel": 2, "budget": 5.5, "budget_period": "7d"})
    key = next(k for k in load_config(tmp_path, ENV).keys if k.name == "app")
    assert key.limits == KeyLimits(rpm=60, tpm=1000, max_parallel=2, budget=5.5,
                                   budget_period_s=7 * 86_400)


def test_a_key_without_limits_has_none(tmp_path: Path):
    _with_keys(tmp_path, {"name": "app", "key": "sk-app-1"})
    keys = load_config(tmp_path, ENV).keys
    assert all(k.limits is None for k in keys)


def test_a_file_key_carries_the_limits_each_of_its_end_users_gets(tmp_path: Path):
    _with_keys(tmp_path, {"name": "app", "key": "sk-app-1", "rpm": 600,
                          "per_user": {"rpm": 10, "budget": 0.5, "budget_period": "30d"}})
    key = next(k for k in load_config(tmp_path, ENV).keys if k.name == "app")
    assert key.per_user == KeyLimits(rpm=10, budget=0.5, budget_period_s=30 * 86_400)
    assert key.limits == KeyLimits(rpm=600)


def test_per_user_limits_alone_leave_the_key_itself_unlimited(tmp_path: Path):
    _with_keys(tmp_path, {"name": "app", "key": "sk-app-1", "per_user": {"tpm": 5000}})
    key = next(k for k in load_config(tmp_path, ENV).keys if k.name == "app")
    assert (key.limits, key.per_user) == (None, KeyLimits(tpm=5000))


@pytest.mark.parametrize(
    ("per_user", "said"),
    [
        ({"rpm": 0}, "keys[0].per_user.rpm: "),
        ({"rpm": 5, "groups": ["a"]}, "keys[0].per_user.groups: unknown key"),
        ({}, "keys[0].per_user: sets no limit"),
        (None, "keys[0].per_user: sets no limit"),
        ({"budget_period": "7d"}, "keys[0].per_user: sets no limit"),
        ({"rpm": None}, "keys[0].per_user: sets no limit"),
        ([10], "keys[0].per_user: must be a mapping"),
    ],
)
def test_bad_per_user_limits_are_reported_with_their_paths(
    tmp_path: Path, per_user: object, said: str
):
    _with_keys(tmp_path, {"name": "app", "key": "sk-app-1", "per_user": per_user})
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, ENV)
    problems = str(caught.value).splitlines()
    assert len(problems) == 1 and said in problems[0], problems


def test_bad_key_limits_are_reported_with_their_paths(tmp_path: Path):
    _with_keys(tmp_path, {"name": "app", "key": "sk-app-1", "rpm": 0, "budget": -1,
                          "budget_period": "1h"})
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, ENV)
    problems = str(caught.value).splitlines()
    assert len(problems) == 3
    for key in ("rpm", "budget", "budget_period"):
        assert any(f"keys[0].{key}: " in p for p in problems)


def test_a_budget_that_is_not_a_finite_number_is_refused(tmp_path: Path):
    # YAML's .nan would pass every comparison, and the key would have no budget at all.
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"auth": {"keys_file": "keys.yaml"}})
    (tmp_path / "keys.yaml").write_text("keys:\n  - {name: app, key: sk-app-1, budget: .nan}\n"
                                        "  - {name: b, key: sk-b-1, budget: .inf}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, ENV)
    problems = str(caught.value).splitlines()
    assert [("keys[0].budget" in p, "finite" in p) for p in problems[:1]] == [(True, True)]
    assert len(problems) == 2


def test_a_model_price_is_read_and_gives_the_router_its_cost(tmp_path: Path):
    models = [dict(DEFAULT_MODELS[0], price={"input_per_mtok": 3, "output_per_mtok": 15}),
              *DEFAULT_MODELS[1:]]
    write_config(tmp_path, "http://127.0.0.1:1", models=models)
    alpha = load_config(tmp_path, ENV).models["alpha"]
    assert alpha.price == Price(input_per_mtok=3.0, output_per_mtok=15.0)
    assert alpha.cost == 18.0
    assert alpha.price.of(1_000_000, 100_000) == pytest.approx(4.5)


def test_a_model_s_max_output_tokens_is_read_and_must_be_a_positive_integer(tmp_path: Path):
    models = [dict(DEFAULT_MODELS[0], max_output_tokens=16384),
              dict(DEFAULT_MODELS[1], max_output_tokens=0), *DEFAULT_MODELS[2:]]
    write_config(tmp_path, "http://127.0.0.1:1", models=models)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, ENV)
    assert str(caught.value).splitlines() == [
        "model_registry.yaml: models.beta.max_output_tokens: must be greater than 0, got 0"]
    write_config(tmp_path, "http://127.0.0.1:1", models=[models[0], *DEFAULT_MODELS[1:]])
    assert load_config(tmp_path, ENV).models["alpha"].max_output_tokens == 16384


def test_a_model_cost_given_wins_over_its_price(tmp_path: Path):
    models = [dict(DEFAULT_MODELS[0], cost=1, price={"input_per_mtok": 3, "output_per_mtok": 15}),
              *DEFAULT_MODELS[1:]]
    write_config(tmp_path, "http://127.0.0.1:1", models=models)
    assert load_config(tmp_path, ENV).models["alpha"].cost == 1


def test_a_price_needs_both_figures(tmp_path: Path):
    models = [dict(DEFAULT_MODELS[0], price={"input_per_mtok": 3}), *DEFAULT_MODELS[1:]]
    write_config(tmp_path, "http://127.0.0.1:1", models=models)
    with pytest.raises(ConfigError, match=r"models.alpha.price.output_per_mtok: "):
        load_config(tmp_path, ENV)


def test_a_price_given_as_one_number_is_one_problem_that_shows_the_mapping(tmp_path: Path):
    models = [dict(DEFAULT_MODELS[0], price=0.5), *DEFAULT_MODELS[1:]]
    write_config(tmp_path, "http://127.0.0.1:1", models=models)
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path, ENV)
    problems = [line for line in str(raised.value).splitlines() if "price" in line]
    assert problems == [
        "model_registry.yaml: models.alpha.price: must be a mapping of prices per million "
        "tokens, as {input_per_mtok: 0.15, output_per_mtok: 0.6}, got a number"]


def test_a_negative_price_is_refused_as_below_zero(tmp_path: Path):
    price = {"input_per_mtok": 3, "output_per_mtok": -1}
    models = [dict(DEFAULT_MODELS[0], price=price), *DEFAULT_MODELS[1:]]
    write_config(tmp_path, "http://127.0.0.1:1", models=models)
    with pytest.raises(ConfigError, match=r"price.output_per_mtok: must be at least 0.0, got -1$"):
        load_config(tmp_path, ENV)


def test_a_price_s_batch_factor_is_read_and_defaults_to_the_whole_price(tmp_path: Path):
    halved = {"input_per_mtok": 3, "output_per_mtok": 15, "batch_factor": 0.5}
    models = [dict(DEFAULT_MODELS[0], price=halved),
              dict(DEFAULT_MODELS[1], price={"input_per_mtok": 1, "output_per_mtok": 2}),
              *DEFAULT_MODELS[2:]]
    write_config(tmp_path, "http://127.0.0.1:1", models=models)
    config = load_config(tmp_path, ENV)
    assert config.models["alpha"].price.batch_factor == 0.5  # type: ignore[union-attr]
    assert config.models["beta"].price.batch_factor == 1.0  # type: ignore[union-attr]


def test_a_batch_factor_above_one_is_refused(tmp_path: Path):
    price = {"input_per_mtok": 3, "output_per_mtok": 15, "batch_factor": 2}
    models = [dict(DEFAULT_MODELS[0], price=price), *DEFAULT_MODELS[1:]]
    write_config(tmp_path, "http://127.0.0.1:1", models=models)
    with pytest.raises(ConfigError, match=r"price.batch_factor: must be between 0.0 and 1.0, got 2$"):
        load_config(tmp_path, ENV)


def test_two_file_keys_with_one_name_are_refused(tmp_path: Path):
    _with_keys(tmp_path, {"name": "app", "key": "sk-app-1"}, {"name": "app", "key": "sk-app-2"})
    with pytest.raises(ConfigError, match=r"keys\[1\]\.name: 'app' is another key's"):
        load_config(tmp_path, ENV)


def test_two_file_keys_with_one_secret_are_refused(tmp_path: Path):
    # The later would win, and the groups meant for the first would not hold.
    _with_keys(tmp_path, {"name": "a", "key": "sk-same", "groups": ["chat"]},
               {"name": "b", "key": "sk-same"})
    with pytest.raises(ConfigError, match=r"keys\[1\]: has the same secret as the key 'a'"):
        load_config(tmp_path, ENV)


def test_a_file_key_with_master_key_s_secret_is_refused(tmp_path: Path):
    _with_keys(tmp_path, {"name": "app", "key": ENV["MASTER_KEY"]})
    with pytest.raises(ConfigError, match=r"has the same secret as the key 'master'"):
        load_config(tmp_path, ENV)


@pytest.mark.parametrize("name", ["chat ui", "=HYPERLINK(x)", "app (unbilled)", "app;x"])
def test_a_file_key_s_name_is_visible_ascii_without_spaces_or_separators(
    tmp_path: Path, name: str
):
    # It goes in log lines, metrics labels and usage reports, as a stored key's name.
    _with_keys(tmp_path, {"name": name, "key": "sk-app-1"})
    with pytest.raises(ConfigError, match=r"keys\[0\]\.name: .*goes in logs, metrics and usage"):
        load_config(tmp_path, ENV)


def test_a_file_key_may_not_be_named_master(tmp_path: Path):
    # MASTER_KEY's name: the operator's key, which reaches every app's files.
    _with_keys(tmp_path, {"name": "master", "key": "sk-app-1"})
    with pytest.raises(ConfigError, match=r"keys\[0\]\.name: 'master' is MASTER_KEY's"):
        load_config(tmp_path, {})


def test_the_most_a_prompt_may_cost_is_at_the_cache_write_price_where_that_is_dearer():
    # A reservation at the input price let a burst of cache-writing prompts overspend.
    anthropic = Price(input_per_mtok=3, output_per_mtok=15, cache_write_per_mtok=3.75)
    assert anthropic.most(1_000_000, 0) == pytest.approx(3.75)
    assert anthropic.most(0, 1_000_000) == pytest.approx(15)
    cheaper = Price(input_per_mtok=3, output_per_mtok=15, cache_read_per_mtok=0.3)
    assert cheaper.most(1_000_000, 1_000_000) == pytest.approx(18)
